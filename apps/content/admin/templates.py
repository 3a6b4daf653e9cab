"""The template editor: edit the draft, preview every channel, send a test, publish (or ask for
approval), and the versions page with diff, revert, approve and reject."""

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.core.validators import validate_email
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from simple_history.admin import SimpleHistoryAdmin

from apps.content import selectors, services
from apps.content.admin.forms import TemplateForm, TemplateLocaleForm
from apps.content.models import Template, TemplateLocale, TemplateVersion
from apps.core.admin import TenantScopedAdmin, allowed_tenant_ids
from apps.core.errors import SignalboxError
from apps.recipients.validators import normalize_phone

CHANNEL_FIELDSETS = [
    ("Email", ["email_subject", "email_preheader", "email_format", "email_body", "email_text"]),
    ("SMS", ["sms_text"]),
    ("Push", ["push_title", "push_body", "push_image", "push_deep_link", "push_data"]),
    ("In-app (inbox)", ["inbox_title", "inbox_body", "inbox_action_url", "inbox_avatar"]),
    ("Chat", ["chat_text", "chat_blocks"]),
    ("Webhook", ["webhook_body"]),
]
PREVIEW_WIDTHS = {"desktop": 600, "mobile": 375}


class TemplateLocaleInline(admin.StackedInline):
    model = TemplateLocale
    form = TemplateLocaleForm
    extra = 0
    verbose_name = "locale variant"
    verbose_name_plural = "Locale variants (a channel left blank uses the template's own content)"
    fieldsets = [(None, {"fields": ["locale"]}), *(
        (title, {"fields": fields, "classes": ["collapse"]}) for title, fields in CHANNEL_FIELDSETS)]


class PreviewForm(forms.Form):
    locale = forms.ChoiceField(required=False)
    recipient = forms.CharField(required=False, max_length=255, label="Recipient external id",
                                help_text="Blank: the template's sample data. Else this recipient and "
                                          "the properties of their latest event.")


class TestSendForm(forms.Form):
    channel = forms.ChoiceField()
    to = forms.CharField(max_length=254, label="Send a test to")

    def clean(self):
        cleaned = super().clean()
        channel, to = cleaned.get("channel"), cleaned.get("to", "").strip()
        if channel == "email":
            validate_email(to)
        elif channel == "sms":
            try:
                cleaned["to"] = normalize_phone(to)
            except forms.ValidationError:
                self.add_error("to", "A phone number in international format, e.g. +14155550123.")
        return cleaned


@admin.register(Template)
class TemplateAdmin(TenantScopedAdmin, SimpleHistoryAdmin):
    form = TemplateForm
    inlines = [TemplateLocaleInline]
    change_form_template = "admin/content/template/change_form.html"
    list_display = ["key", "name", "category", "tenant", "live_version", "updated_at"]
    list_filter = ["category"]
    list_select_related = ["tenant", "published_version"]
    search_fields = ["key", "name"]
    fieldsets = [
        (None, {"fields": ["tenant", "key", "name", "category", "description", "strict", "layout"]}),
        *((title, {"fields": fields}) for title, fields in CHANNEL_FIELDSETS),
        ("Preview", {"fields": ["sample_data"]}),
    ]

    @admin.display(description="Live version")
    def live_version(self, obj):
        return f"v{obj.published_version.number}" if obj.published_version_id else "—"

    def get_readonly_fields(self, request, obj=None):
        # The key is what API callers and journeys use: fixed once the template has gone live.
        return ["key"] if obj is not None and obj.published_version_id else []

    def save_formset(self, request, form, formset, change):
        for row in formset.save(commit=False):
            row.tenant = form.instance.tenant
            row.save()
        for row in formset.deleted_objects:
            row.delete()

    def response_add(self, request, obj, post_url_continue=None):
        return self._after_save(request, obj) or super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        return self._after_save(request, obj) or super().response_change(request, obj)

    def _after_save(self, request, obj):
        for button, view in (("_preview", "preview"), ("_publish", "publish")):
            if button in request.POST:
                return HttpResponseRedirect(reverse(f"admin:content_template_{view}", args=[obj.pk]))
        return None

    def get_urls(self):
        def view(name, function):
            return path(f"<path:object_id>/{name}/", self.admin_site.admin_view(function),
                        name=f"content_template_{name.split('/')[0]}")

        return [
            view("preview", self.preview_view),
            view("publish", self.publish_view),
            view("versions", self.versions_view),
            view("diff", self.diff_view),
            path("<path:object_id>/versions/<int:number>/<str:action>/",
                 self.admin_site.admin_view(self.version_action_view), name="content_template_version"),
            *super().get_urls(),
        ]

    # --- helpers --------------------------------------------------------------------------

    def _template(self, request, object_id, *, change: bool = False) -> Template:
        template = self.get_object(request, unquote(object_id))
        if template is None:
            raise Http404("No such template.")  # another tenant's is not found, not forbidden
        allowed = self.has_change_permission(request, template) if change else \
            self.has_view_permission(request, template)
        if not allowed:
            raise PermissionDenied
        return template

    def _may_publish(self, request, template: Template) -> bool:
        allowed = allowed_tenant_ids(request, "content.add_templateversion")
        return self.has_change_permission(request, template) and (
            allowed is None or template.tenant_id in allowed)

    def _context(self, request, template: Template, title: str, **extra) -> dict:
        return {**self.admin_site.each_context(request), "opts": self.model._meta, "original": template,
                "title": title, "subtitle": str(template),
                "may_publish": self._may_publish(request, template),
                "may_change": self.has_change_permission(request, template), **extra}

    # --- preview and test send ------------------------------------------------------------

    def preview_view(self, request, object_id):
        template = self._template(request, object_id)
        locales = ["", *template.locales.values_list("locale", flat=True)]
        form = PreviewForm(request.GET or None)
        form.fields["locale"].choices = [(code, code or "The recipient's") for code in locales]
        recipient, data = selectors.sample_for(template)
        source = "the template's sample data"
        if form.is_valid() and form.cleaned_data["recipient"]:
            found = self._recipient(request, template, form.cleaned_data["recipient"])
            if found is None:
                form.add_error("recipient", "No recipient with this external id in the template's tenants.")
            else:
                recipient, data, source = found
        locale = form.cleaned_data.get("locale", "") if form.is_bound and not form.errors else ""
        preview = services.template_preview(template=template, recipient=recipient, data=data, locale=locale)
        for result in preview.get("channels", {}).values():
            if "content" in result:
                result["pretty"] = json.dumps(result["content"], indent=2, ensure_ascii=False)
        channels = list(preview.get("channels", {}))
        test_form = TestSendForm(request.POST or None, initial={"to": request.user.email})
        test_form.fields["channel"].choices = [(c, c) for c in channels]
        if request.method == "POST":
            if not self.has_change_permission(request, template):
                raise PermissionDenied
            if test_form.is_valid():
                try:
                    provider = services.template_send_test(
                        template=template, channel=test_form.cleaned_data["channel"],
                        to=test_form.cleaned_data["to"], recipient=recipient, data=data)
                except SignalboxError as error:
                    for field, problems in error.fields.items():
                        for problem in problems:
                            test_form.add_error(field if field in test_form.fields else None, problem)
                else:
                    self.message_user(request, f"Test {test_form.cleaned_data['channel']} sent to "
                                               f"{test_form.cleaned_data['to']} through {provider}.")
                    return HttpResponseRedirect(request.get_full_path())
        return TemplateResponse(request, "admin/content/template/preview.html", self._context(
            request, template, "Preview", form=form, preview=preview, source=source,
            test_form=test_form, widths=PREVIEW_WIDTHS))

    def _recipient(self, request, template: Template, external_id: str):
        """(profile, latest event's properties, label) of a recipient of the template's tenant or
        its sub-tenants that the user may see; None if there is none."""
        from apps.events.models import Event
        from apps.recipients.models import Recipient
        from apps.tenants.selectors import tenant_descendant_ids

        tenant_ids = tenant_descendant_ids(tenant_ids=[template.tenant_id])
        visible = allowed_tenant_ids(request, "recipients.view_recipient")
        if visible is not None:
            tenant_ids &= visible
        row = Recipient.objects.filter(tenant_id__in=tenant_ids, external_id=external_id).first()
        if row is None:
            return None
        event = Event.objects.filter(tenant_id=row.tenant_id, recipient=row).order_by("-occurred_at").first()
        label = f"recipient {external_id}" + (f" and their latest event “{event.name}”" if event else "")
        return services.recipient_profile(row), (event.properties if event else {}), label

    # --- publishing -----------------------------------------------------------------------

    def publish_view(self, request, object_id):
        template = self._template(request, object_id, change=True)
        if not self._may_publish(request, template):
            raise PermissionDenied
        errors = services.template_draft_errors(template=template)
        if request.method == "POST" and not errors:
            try:
                version = services.template_version_publish(
                    template=template, user=request.user, comment=request.POST.get("comment", "")[:2000])
            except SignalboxError as error:
                errors = error.fields or {"template": [error.message]}
            else:
                if version.state == TemplateVersion.State.PUBLISHED:
                    self.message_user(request, f"Published version {version.number}.", messages.SUCCESS)
                else:
                    self.message_user(request, f"Version {version.number} awaits approval.", messages.WARNING)
                return HttpResponseRedirect(reverse("admin:content_template_versions", args=[template.pk]))
        current = template.published_version
        changes = selectors.source_diff(current.source, selectors.template_source(template=template),
                                        (f"version {current.number} (live)", "the draft")) \
            if current and not errors else None
        needs_approval = services.approval_required(template.tenant) and not services.user_may_approve(
            request.user, template.tenant)
        return TemplateResponse(request, "admin/content/template/publish.html", self._context(
            request, template, "Publish", errors=errors, current=current, changes=changes,
            needs_approval=needs_approval))

    def versions_view(self, request, object_id):
        template = self._template(request, object_id)
        versions = list(template.versions.select_related("created_by", "reviewed_by"))
        return TemplateResponse(request, "admin/content/template/versions.html", self._context(
            request, template, "Versions", versions=versions,
            edits=selectors.template_edits(template=template),
            may_approve=services.user_may_approve(request.user, template.tenant)))

    def diff_view(self, request, object_id):
        template = self._template(request, object_id)
        sources = {}
        for side in ("a", "b"):
            wanted = request.GET.get(side, "draft")
            if wanted == "draft":
                sources[side] = ("the draft", selectors.template_source(template=template))
                continue
            version = template.versions.filter(number=wanted).first() if wanted.isdigit() else None
            if version is None:
                raise Http404(f"No version {wanted}.")
            sources[side] = (f"version {version.number}", version.source)
        changes = selectors.source_diff(sources["a"][1], sources["b"][1], (sources["a"][0], sources["b"][0]))
        return TemplateResponse(request, "admin/content/template/diff.html", self._context(
            request, template, f"Changes from {sources['a'][0]} to {sources['b'][0]}", changes=changes,
            a=sources["a"][0], b=sources["b"][0]))

    def version_action_view(self, request, object_id, number: int, action: str):
        template = self._template(request, object_id)
        version = template.versions.filter(number=number).first()
        if request.method != "POST" or version is None or action not in ("revert", "approve", "reject"):
            raise Http404
        comment = request.POST.get("comment", "")[:2000]
        try:
            if action == "revert":
                if not self._may_publish(request, template):
                    raise PermissionDenied
                new = services.template_version_revert(version=version, user=request.user)
                state = "published" if new.state == TemplateVersion.State.PUBLISHED else "awaiting approval"
                self.message_user(request, f"Reverted to version {number} as version {new.number} ({state}).")
            elif action == "approve":
                services.template_version_approve(version=version, user=request.user, comment=comment)
                self.message_user(request, f"Approved and published version {number}.", messages.SUCCESS)
            else:
                services.template_version_reject(version=version, user=request.user, comment=comment)
                self.message_user(request, f"Rejected version {number}.", messages.WARNING)
        except SignalboxError as error:
            self.message_user(request, error.message if not error.fields else
                              " ".join(m for ms in error.fields.values() for m in ms), messages.ERROR)
        return HttpResponseRedirect(reverse("admin:content_template_versions", args=[template.pk]))
