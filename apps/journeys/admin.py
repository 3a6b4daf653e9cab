import json

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.utils.html import format_html

from apps.core.admin import BigTableAdmin, JSONField, TenantScopedAdmin
from apps.core.errors import SignalboxError
from apps.journeys import conditions, selectors, services
from apps.journeys.diagram import journey_svg
from apps.journeys.models import Journey, JourneyRun

DEFINITION_HELP = (
    "The trigger, re-entry rule, exit events, goal and steps as JSON (see apps/journeys/definition.py); "
    "the conditions form above edits this JSON. "
    "Every error names its place: <code>steps.&lt;step id&gt;.&lt;field&gt;</code>.")


class IndentedJSONField(JSONField):
    """Shown indented, one step per few lines, so that a marketer can find the step an error names."""

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False)


class JourneyForm(forms.ModelForm):
    definition = IndentedJSONField(help_text=DEFINITION_HELP, widget=forms.Textarea(
        attrs={"rows": 30, "cols": 100, "class": "vLargeTextField"}))

    class Meta:
        model = Journey
        fields = ["tenant", "key", "name", "definition"]

    def clean(self):
        data = super().clean()
        definition, tenant = data.get("definition"), data.get("tenant")
        if definition is None or tenant is None:
            return data
        journey = Journey(tenant=tenant, definition=definition)
        self.step_errors = services.journey_definition_errors(journey=journey)
        for path, problems in self.step_errors.items():
            for problem in problems:
                self.add_error("definition", f"{path}: {problem}")
        return data


@admin.register(Journey)
class JourneyAdmin(TenantScopedAdmin):
    form = JourneyForm
    change_form_template = "admin/journeys/journey/change_form.html"
    list_display = ["name", "key", "tenant", "status", "live"]
    list_select_related = ["tenant", "live_version"]
    list_filter = ["status"]
    search_fields = ["key", "name"]
    readonly_fields = ["status", "live", "diagram"]
    fieldsets = [(None, {"fields": ["tenant", "key", "name", "status", "live"]}),
                 ("Steps", {"fields": ["diagram", "definition"]})]

    @admin.display(description="Live version")
    def live(self, obj):
        return f"v{obj.live_version.number}" if obj.live_version_id else "not published"

    @admin.display(description="Diagram (live counts per step)")
    def diagram(self, obj):
        if obj.pk is None:
            return "Save to see the diagram."
        errors = services.journey_definition_errors(journey=obj)
        return journey_svg(obj.definition, selectors.journey_step_counts(journey=obj), errors)

    def get_changeform_initial_data(self, request):
        return {**super().get_changeform_initial_data(request),
                "definition": {"trigger": {"event": ""}, "reentry": {"rule": "once"}, "exit_events": [],
                               "steps": []}}

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        # For the conditions editor (static/journeys/conditions.js): the operators the server
        # accepts, and the errors of the last save, by path, to show on the row they name.
        adminform = context.get("adminform")
        if adminform and "definition" not in adminform.readonly_fields:
            context["condition_operators"] = conditions.OPERATORS
            context["condition_errors"] = getattr(adminform.form, "step_errors", {})
        return super().render_change_form(request, context, add, change, form_url, obj)

    def response_change(self, request, obj):
        actions = {"_activate": services.journey_activate, "_pause": services.journey_pause,
                   "_resume": services.journey_resume, "_archive": services.journey_archive}
        for button, action in actions.items():
            if button in request.POST:
                try:
                    action(journey=obj)
                    obj.refresh_from_db()
                    self.message_user(request, f"{obj.name} is now {obj.status}.", messages.SUCCESS)
                except SignalboxError as error:
                    details = "; ".join(f"{p}: {', '.join(m)}" for p, m in error.fields.items())
                    self.message_user(request, f"{error.message} {details}".strip(), messages.ERROR)
                return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)



@admin.register(JourneyRun)
class JourneyRunAdmin(BigTableAdmin):
    list_display = ["id", "journey", "recipient", "status", "current_step", "entered_at", "due_at"]
    list_select_related = ["journey", "recipient"]
    list_filter = ["status"]
    search_fields = ["id"]
    search_help_text = "Run id."
    fields = ["journey", "version", "recipient", "status", "current_step", "due_at", "wait_event",
              "cancellation_key", "entered_at", "ended_at", "end_reason", "converted_at", "path_table",
              "context_json"]
    readonly_fields = fields

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        return (queryset.filter(pk=int(term)) if term.isdigit() else queryset), False

    @admin.display(description="Path")
    def path_table(self, obj):
        return run_path_html(obj)

    @admin.display(description="Context")
    def context_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.context, indent=2)[:5000])


def run_path_html(run: JourneyRun):
    """The steps a run went through, in order, with when and how each was left."""
    from django.utils.html import format_html_join

    rows = format_html_join("", "<li><b>{}</b> ({}) entered {} — {}{}</li>", (
        (visit.step.key, visit.step.type, visit.entered_at.strftime("%Y-%m-%d %H:%M:%S"),
         visit.outcome or "here now", f": {visit.reason}" if visit.reason else "")
        for visit in run.path.all()))
    return format_html("<ol>{}</ol>", rows) if rows else "—"
