import json

import phonenumbers
from django.contrib import admin
from django.db.models import Q
from django.urls import reverse
from django.utils.html import format_html, format_html_join

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
              "latest_events", "journey_runs"]
    readonly_fields = ["aliases", "merged_into", "erased_at", "created_at", "updated_at",
                       "latest_messages", "latest_events", "journey_runs"]

    LATEST_EVENTS = 20

    def save_model(self, request, obj, form, change):
        from apps.recipients.services import profiles_changed

        super().save_model(request, obj, form, change)
        profiles_changed(tenant_id=obj.tenant_id, recipient_ids=[obj.pk])

    @admin.display(description="Aliases")
    def aliases(self, obj):
        return ", ".join(obj.aliases.values_list("alias", flat=True)) or "—"

    @admin.display(description=f"Latest {LATEST_EVENTS} messages")
    def latest_messages(self, obj):
        messages = obj.messages.order_by("-id")[: self.LATEST_EVENTS]
        return _table(["When", "Message", "Channel", "Category", "Status"], [
            (m.created_at, _link("messaging_message", m.pk, f"#{m.pk}"),
             m.channel or "/".join(m.channels), m.category, m.status) for m in messages
        ]) or "No messages."

    @admin.display(description=f"Latest {LATEST_EVENTS} events")
    def latest_events(self, obj):
        events = obj.events.order_by("-occurred_at")[: self.LATEST_EVENTS]
        return _table(["When", "Event", "Kind", "Properties"], [
            (e.occurred_at, _link("events_event", e.pk, e.name), e.kind,
             format_html("<code>{}</code>", json.dumps(e.properties)[:120])) for e in events
        ]) or "No events."

    @admin.display(description="Journey runs (latest 20), step by step")
    def journey_runs(self, obj):
        from apps.journeys.admin import run_path_html
        from apps.journeys.selectors import recipient_runs

        return _table(["Entered", "Run", "Journey", "Status", "Path"], [
            (run.entered_at, _link("journeys_journeyrun", run.pk, f"#{run.pk}"),
             f"{run.journey.name} v{run.version.number}",
             f"{run.status}{f' ({run.end_reason})' if run.end_reason else ''}", run_path_html(run))
            for run in recipient_runs(recipient=obj)
        ]) or "No journey runs."

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


def _link(admin_name: str, pk: int, text: str):
    return format_html('<a href="{}">{}</a>', reverse(f"admin:{admin_name}_change", args=[pk]), text)


def _table(headers: list[str], rows: list[tuple]):
    """A small read-only HTML table for a change page; "" when there are no rows."""
    if not rows:
        return ""
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join("", "<tr>{}</tr>", (
        (format_html_join("", "<td>{}</td>", ((
            cell.strftime("%Y-%m-%d %H:%M:%S") if hasattr(cell, "strftime") else cell,) for cell in row)),)
        for row in rows))
    return format_html("<table><tr>{}</tr>{}</table>", head, body)
