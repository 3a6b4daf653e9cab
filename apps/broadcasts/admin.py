import csv
import io

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from apps.broadcasts import selectors, services
from apps.broadcasts.models import Broadcast
from apps.core.admin import TenantScopedAdmin
from apps.core.errors import InvalidInput, SignalboxError
from apps.messaging.models import Channel

CSV_HELP = ("A CSV file of external ids: the first column of each row (a first row reading "
            "'external_id' is skipped). Up to 10,000 rows; leave blank to send to the segment.")
FIELD_OF = {"template": "template_key", "segment": "segment", "channels": "channels", "category": "category",
            "priority": "priority", "send_at": "send_at", "recipients": "recipients_csv"}


def parse_csv(upload) -> list[tuple[int, str]]:
    """(row number, external id) for each row; InvalidInput naming bad rows."""
    try:
        text = upload.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput.field("recipients", "Not a UTF-8 text file.") from None
    rows, errors = [], []
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        value = row[0].strip() if row else ""
        if number == 1 and value.lower() == "external_id":
            continue
        if not value:
            errors.append(f"Row {number}: no external id in the first column.")
        else:
            rows.append((number, value))
    if errors:
        raise InvalidInput("Bad rows", fields={"recipients": errors[:50]})
    if not rows:
        raise InvalidInput.field("recipients", "The file lists no external ids.")
    return rows


class BroadcastForm(forms.ModelForm):
    channels = forms.MultipleChoiceField(
        choices=Channel.choices, required=False, widget=forms.CheckboxSelectMultiple,
        help_text="In fallback order (email, sms, …); none ticked: the template's channels.")
    recipients_csv = forms.FileField(label="Recipients (CSV)", required=False, help_text=CSV_HELP)

    class Meta:
        model = Broadcast
        fields = ["tenant", "name", "template_key", "segment", "recipients_csv", "channels", "category",
                  "priority", "data", "send_at", "local_time"]

    def clean(self):
        data = super().clean()
        tenant, upload = data.get("tenant"), data.get("recipients_csv")
        if tenant is None or self.errors:
            return data
        try:
            rows = parse_csv(upload) if upload else None
            self.built = services.broadcast_build(
                tenant=tenant, name=data.get("name", ""), template_key=data.get("template_key", ""),
                segment_key=data["segment"].key if data.get("segment") else "",
                external_ids=[ext for _, ext in rows] if rows is not None else None,
                channels=data.get("channels") or None, category=data.get("category", ""),
                priority=data.get("priority", ""), data=data.get("data") or {}, send_at=data.get("send_at"),
                local_time=data.get("local_time", False), created_by=self.user)
        except InvalidInput as error:
            for path_, problems in error.fields.items():
                head, _, index = path_.partition(".")
                prefix = f"Row {rows[int(index)][0]}: " if head == "recipients" and index else ""
                for problem in problems:
                    self.add_error(FIELD_OF.get(head), prefix + problem)
        return data


@admin.register(Broadcast)
class BroadcastAdmin(TenantScopedAdmin):
    form = BroadcastForm
    change_form_template = "admin/broadcasts/broadcast/change_form.html"
    list_display = ["name", "tenant", "template_key", "audience", "status", "send_at", "targeted",
                    "created_at"]
    list_select_related = ["tenant", "segment"]
    list_filter = ["status"]
    search_fields = ["name", "template_key"]
    shown = ["tenant", "name", "template_key", "audience", "channels", "category", "priority", "data",
             "send_at", "local_time", "status", "progress", "started_at", "finished_at", "created_by"]

    class Media:
        js = ["broadcasts/progress.js"]

    def get_fields(self, request, obj=None):
        return self.shown if obj else super().get_fields(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return self.shown if obj else []  # a broadcast is not edited once created

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.user = request.user
        return form

    @admin.display(description="Audience")
    def audience(self, obj):
        if obj.segment_id:
            return f"segment {obj.segment.key}"
        return "an uploaded list"

    @admin.display(description="Progress")
    def progress(self, obj):
        counts = selectors.broadcast_progress(broadcast=obj)
        url = reverse("admin:broadcasts_broadcast_progress", args=[obj.pk])
        messages_url = reverse("admin:messaging_message_changelist") + f"?broadcast={obj.pk}"
        return format_html(
            '<div class="sb-broadcast-progress" data-url="{}">'
            '<progress max="100" value="{}" style="width: 24em"></progress> <b class="sb-percent">{} %</b>'
            '<p class="sb-counts">{}</p><p><a href="{}">The broadcast\'s messages</a></p></div>',
            url, counts["percent"], counts["percent"], counts_text(counts), messages_url)

    def get_urls(self):
        return [path("<int:object_id>/progress/", self.admin_site.admin_view(self.progress_view),
                     name="broadcasts_broadcast_progress"), *super().get_urls()]

    def progress_view(self, request, object_id: int):
        broadcast = get_object_or_404(self.get_queryset(request), pk=object_id)
        if not self.has_view_permission(request, broadcast):
            return JsonResponse({"error": "forbidden"}, status=403)
        counts = selectors.broadcast_progress(broadcast=broadcast)
        return JsonResponse({**counts, "text": counts_text(counts)})

    def save_model(self, request, obj, form, change):
        if not change:  # built and checked by the form
            broadcast, recipient_ids = form.built
            services.broadcast_save(broadcast=broadcast, recipient_ids=recipient_ids)
            obj.pk = broadcast.pk
        # A change saves nothing: the row belongs to the fan-out; the buttons below act on it.

    def save_related(self, request, form, formsets, change):
        pass

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(show_save=False, show_save_and_continue=False, show_save_and_add_another=False,
                           show_delete=obj.status == Broadcast.Status.DRAFT)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and (
            obj is None or obj.status == Broadcast.Status.DRAFT)

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(request, f"{obj.name} is saved as a draft: press Start to send it.",
                          messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:broadcasts_broadcast_change", args=[obj.pk]))

    def response_change(self, request, obj):
        actions = {"_start": services.broadcast_start, "_pause": services.broadcast_pause,
                   "_resume": services.broadcast_resume, "_cancel": services.broadcast_cancel}
        for button, action in actions.items():
            if button in request.POST:
                try:
                    obj = action(broadcast=obj)
                    self.message_user(request, f"{obj.name} is now {obj.status}.", messages.SUCCESS)
                except SignalboxError as error:
                    self.message_user(request, error.message, messages.ERROR)
                return HttpResponseRedirect(request.path)
        return HttpResponseRedirect(request.path)


def counts_text(counts: dict) -> str:
    return (f"targeted {counts['targeted']:,} · queued {counts['queued']:,} · sent {counts['sent']:,} · "
            f"suppressed {counts['suppressed']:,} · failed {counts['failed']:,} · "
            f"cancelled {counts['cancelled']:,} · {counts['status']}")
