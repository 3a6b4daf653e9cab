import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect, JsonResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from apps.core.admin import JSONField, TenantScopedAdmin
from apps.core.errors import SignalboxError
from apps.journeys import conditions as language
from apps.segments import selectors, services
from apps.segments.models import Segment

CONDITIONS_HELP = (
    "Who is in the segment, as JSON (the form above edits it): fields start with "
    "<code>recipient.</code> (external_id, email, phone, locale, timezone, created_at, "
    "<code>attributes.&lt;name&gt;</code>) or <code>history.&lt;event name&gt;</code> (when the recipient "
    "last did it). Empty: every recipient. See docs/segments.md.")
SAMPLE_SIZE = 20


class IndentedJSONField(JSONField):
    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value if value is not None else {}, indent=2, ensure_ascii=False)


class SegmentForm(forms.ModelForm):
    conditions = IndentedJSONField(required=False, help_text=CONDITIONS_HELP, widget=forms.Textarea(
        attrs={"rows": 14, "cols": 100, "class": "vLargeTextField"}))

    class Meta:
        model = Segment
        fields = ["tenant", "key", "name", "description", "conditions"]

    def clean_conditions(self):
        return self.cleaned_data.get("conditions") or {}

    def clean(self):
        data = super().clean()
        self.condition_errors = {}
        if "conditions" in data:
            self.condition_errors = services.segment_errors(segment=Segment(conditions=data["conditions"]))
            for where, problems in self.condition_errors.items():
                for problem in problems:
                    self.add_error("conditions", f"{where}: {problem}")
        return data


@admin.register(Segment)
class SegmentAdmin(TenantScopedAdmin):
    form = SegmentForm
    change_form_template = "admin/segments/segment/change_form.html"
    list_display = ["name", "key", "tenant", "size", "status", "computed_at"]
    list_select_related = ["tenant"]
    list_filter = ["status"]
    search_fields = ["key", "name"]
    readonly_fields = ["size", "progress", "computed_at", "sample"]
    fieldsets = [(None, {"fields": ["tenant", "key", "name", "description"]}),
                 ("Members", {"fields": ["size", "progress", "computed_at", "sample"]}),
                 ("Conditions", {"fields": ["conditions"]})]

    @admin.display(description="Size", ordering="member_count")
    def size(self, obj):
        return obj.member_count if obj.pk else "—"

    @admin.display(description="Status")
    def progress(self, obj):
        if obj.pk is None:
            return "Computed when saved."
        total = obj.progress_total or 0
        return format_html(
            '<span id="sb-segment-status" data-url="{}">{}</span> '
            '<progress id="sb-segment-progress" max="{}" value="{}"{}></progress> '
            '<span id="sb-segment-counts">{}</span>',
            reverse("admin:segments_segment_progress", args=[obj.pk]), obj.status, total or 1,
            obj.progress_done, "" if obj.status == Segment.Status.COMPUTING else " hidden",
            f"{obj.progress_done} of {total} recipients" if obj.status == Segment.Status.COMPUTING else "")

    @admin.display(description=f"Sample ({SAMPLE_SIZE} members)")
    def sample(self, obj):
        if obj.pk is None:
            return "—"
        rows = format_html_join("", '<li><a href="{}">{}</a></li>', (
            (reverse("admin:recipients_recipient_change", args=[r.pk]), str(r))
            for r in selectors.segment_sample(segment=obj, limit=SAMPLE_SIZE)))
        return format_html('<ul id="sb-segment-sample">{}</ul>', rows) if rows else "No members."

    def save_model(self, request, obj, form, change):
        services.segment_save(segment=obj)

    def get_urls(self):
        return [path("<int:pk>/progress/", self.admin_site.admin_view(self.progress_view),
                     name="segments_segment_progress"), *super().get_urls()]

    def progress_view(self, request, pk: int):
        """What the change page polls while a recompute runs."""
        segment = self.get_queryset(request).filter(pk=pk).first()
        if segment is None:
            raise Http404
        if not self.has_view_permission(request, segment):
            raise PermissionDenied
        return JsonResponse({"status": segment.status, "done": segment.progress_done,
                             "total": segment.progress_total, "size": segment.member_count})

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        adminform = context.get("adminform")
        if adminform and "conditions" not in adminform.readonly_fields:
            context["condition_operators"] = language.OPERATORS
            context["condition_errors"] = getattr(adminform.form, "condition_errors", {})
        return super().render_change_form(request, context, add, change, form_url, obj)

    def response_change(self, request, obj):
        if "_recompute" in request.POST:
            try:
                services.segment_recompute_request(segment=obj)
                self.message_user(request, f"{obj.name} is being recomputed.", messages.SUCCESS)
            except SignalboxError as error:
                self.message_user(request, error.message, messages.ERROR)
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)
