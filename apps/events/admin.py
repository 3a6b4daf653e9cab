from django.contrib import admin
from django.db.models import Q

from apps.core.admin import BigTableAdmin
from apps.events.models import Event


@admin.register(Event)
class EventAdmin(BigTableAdmin):
    list_display = ["name", "kind", "recipient", "source", "occurred_at", "received_at", "processed"]
    list_select_related = ["recipient"]
    list_filter = ["source", "kind"]
    search_fields = ["name"]  # shows the box; get_search_results does the work
    search_help_text = "Exact event name, or a recipient's external id."
    raw_id_fields = ["recipient"]
    fields = ["tenant", "recipient", "name", "kind", "source", "properties", "context", "message_id",
              "cancellation_key", "occurred_at", "received_at", "timestamp_clamped", "processed_at",
              "process_error"]

    @admin.display(boolean=True)
    def processed(self, obj):
        return obj.processed_at is not None

    def get_search_results(self, request, queryset, search_term):
        # Exact matches only, so the (tenant, recipient, name, occurred_at) index is usable.
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(Q(name=term) | Q(recipient__external_id=term)), False
