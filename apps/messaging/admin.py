from django.contrib import admin

from apps.core.admin import BigTableAdmin
from apps.messaging.models import Attempt, Message, StatusEvent


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class TimelineInline(ReadOnlyInline):
    model = StatusEvent
    verbose_name_plural = "Timeline"
    fields = readonly_fields = ["created_at", "status", "reason_code", "reason", "detail"]


class AttemptInline(ReadOnlyInline):
    model = Attempt
    verbose_name_plural = "Provider attempts"
    fields = readonly_fields = ["created_at", "provider", "channel", "outcome", "response_code",
                                "response_excerpt", "error_class", "duration_ms", "request_summary"]


@admin.register(Message)
class MessageAdmin(BigTableAdmin):
    list_display = ["id", "recipient", "channel", "category", "priority", "status", "created_at"]
    list_select_related = ["recipient"]
    list_filter = ["status", "channel"]
    search_fields = ["id"]  # shows the box; get_search_results does the work
    search_help_text = "Message id, or a recipient's external id."
    raw_id_fields = ["recipient", "event", "template_version", "journey_run", "journey_step", "broadcast"]
    inlines = [TimelineInline, AttemptInline]
    fieldsets = [
        (None, {"fields": ["tenant", "recipient", "status", "channels", "channel", "category",
                           "priority", "source", "test_mode", "dedupe_key"]}),
        ("Timing", {"fields": ["send_at", "expires_at", "sent_at", "attempts", "next_attempt_at"]}),
        ("Content", {"fields": ["template_key", "template_version", "content", "data", "rendered", "provider",
                                "provider_message_id", "event", "journey_run", "journey_step",
                                "broadcast"]}),
    ]

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.isdigit():
            return queryset.filter(pk=int(term)), False
        return queryset.filter(recipient__external_id=term), False
