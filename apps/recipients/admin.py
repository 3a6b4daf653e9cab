import json

import phonenumbers
from django.contrib import admin
from django.db.models import Q
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from apps.core.admin import TenantScopedAdmin
from apps.recipients.models import Recipient


@admin.register(Recipient)
class RecipientAdmin(TenantScopedAdmin):
    list_display = ["__str__", "email", "phone", "tenant", "created_at"]
    list_select_related = ["tenant"]
    list_filter = ["tenant"]
    search_fields = ["external_id"]  # shows the box; get_search_results does the work
    search_help_text = "Exact email, phone (international format) or external id."
    show_full_result_count = False
    fields = ["tenant", "external_id", "email", "phone", "locale", "timezone", "attributes",
              "aliases", "merged_into", "erased_at", "created_at", "updated_at", "latest_messages",
              "latest_events"]
    readonly_fields = ["aliases", "merged_into", "erased_at", "created_at", "updated_at",
                       "latest_messages", "latest_events"]

    LATEST_EVENTS = 20

    @admin.display(description="Aliases")
    def aliases(self, obj):
        return ", ".join(obj.aliases.values_list("alias", flat=True)) or "—"

    @admin.display(description=f"Latest {LATEST_EVENTS} messages")
    def latest_messages(self, obj):
        rows = format_html_join(
            "", "<tr><td>{}</td><td><a href=\"{}\">#{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((m.created_at.strftime("%Y-%m-%d %H:%M:%S"),
              reverse("admin:messaging_message_change", args=[m.pk]), m.pk,
              m.channel or "/".join(m.channels), m.category, m.status)
             for m in obj.messages.order_by("-id")[: self.LATEST_EVENTS]),
        )
        if not rows:
            return "No messages."
        head = mark_safe(  # noqa: S308
            "<tr><th>When</th><th>Message</th><th>Channel</th><th>Category</th><th>Status</th></tr>")
        return format_html("<table>{}{}</table>", head, rows)

    @admin.display(description=f"Latest {LATEST_EVENTS} events")
    def latest_events(self, obj):
        events = obj.events.order_by("-occurred_at")[: self.LATEST_EVENTS]
        rows = format_html_join(
            "", "<tr><td>{}</td><td><a href=\"{}\">{}</a></td><td>{}</td><td><code>{}</code></td></tr>",
            ((e.occurred_at.strftime("%Y-%m-%d %H:%M:%S"),
              reverse("admin:events_event_change", args=[e.pk]), e.name, e.kind,
              json.dumps(e.properties)[:120]) for e in events),
        )
        if not rows:
            return "No events."
        head = mark_safe("<tr><th>When</th><th>Event</th><th>Kind</th><th>Properties</th></tr>")  # noqa: S308
        return format_html("<table>{}{}</table>", head, rows)

    def get_search_results(self, request, queryset, search_term):
        # Exact matches on the indexed (tenant, column) pairs: fast on millions of rows.
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(external_id=term) | Q(email=term.lower())
        try:
            number = phonenumbers.parse(term, None)
            match |= Q(phone=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
        except phonenumbers.NumberParseException:
            pass
        return queryset.filter(match), False
