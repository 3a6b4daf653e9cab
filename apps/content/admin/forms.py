"""Admin forms: each draft, layout and partial is checked on save, every error on its field."""

from django import forms

from apps.content import selectors, services, validation
from apps.content.models import Brand, Layout, Partial, Template, TemplateLocale
from apps.core.validators import normalize_locale

CODE_FIELDS = ["email_body", "email_text", "sms_text", "push_body", "push_data", "inbox_body", "chat_text",
               "chat_blocks", "webhook_body", "body"]


def code_widgets(fields: list[str]) -> dict:
    """Monospace text areas for Liquid/MJML/JSON sources (static/content/editor.css)."""
    return {name: forms.Textarea(attrs={"class": "vLargeTextField sb-code", "spellcheck": "false",
                                        "rows": 14 if name in ("email_body", "body") else 4})
            for name in fields if name in CODE_FIELDS}


class SourceForm(forms.ModelForm):
    """Browsers send text areas with CRLF line ends; sources are stored with LF, so a save
    without edits changes nothing and diffs show only real changes."""

    def clean(self):
        cleaned = super().clean()
        for name, value in cleaned.items():
            if isinstance(value, str) and "\r" in value:
                cleaned[name] = value.replace("\r\n", "\n").replace("\r", "\n")
        return cleaned


def add_errors(form: forms.BaseForm, errors: dict[str, list[str]], prefix: str = "") -> None:
    """Put service errors ({"email_body": […], "pt-BR/sms_text": […], "partial:footer": […]}) on the
    form's fields; those of other locales are left to their own forms."""
    for key, messages in errors.items():
        if prefix:
            if not key.startswith(prefix):
                continue
            key = key[len(prefix):]
        elif "/" in key:
            continue
        field = key if key in form.fields else None
        for message in messages:
            form.add_error(field, message if field else f"{key}: {message}")


class TemplateForm(SourceForm):
    class Meta:
        model = Template
        fields = ["tenant", "key", "name", "category", "description", "strict", "layout",
                  *selectors.CONTENT_FIELDS, "sample_data"]
        widgets = code_widgets(list(selectors.CONTENT_FIELDS))

    def _post_clean(self):
        super()._post_clean()
        template = self.instance
        if self._errors or template.tenant_id is None:
            return
        if not services.layout_in_lineage(template.layout, template.tenant):
            self.add_error("layout", "Pick a layout of this tenant or one of its parents.")
            return
        if not isinstance(template.sample_data, dict) or any(
                not isinstance(template.sample_data.get(k, {}), dict) for k in ("recipient", "data")):
            self.add_error("sample_data", 'An object: {"recipient": {…}, "data": {…}}.')
            return
        add_errors(self, services.template_draft_errors(template=template, locales=[]))


class TemplateLocaleForm(SourceForm):
    class Meta:
        model = TemplateLocale
        fields = ["locale", *selectors.CONTENT_FIELDS]
        widgets = code_widgets(list(selectors.CONTENT_FIELDS))

    def clean_locale(self):
        return normalize_locale(self.cleaned_data["locale"])

    def _post_clean(self):
        super()._post_clean()
        row = self.instance
        template = getattr(row, "template", None)
        if self._errors or template is None or template.tenant_id is None or self.cleaned_data.get("DELETE"):
            return
        errors = services.template_draft_errors(template=template, locales=[row])
        add_errors(self, errors, prefix=f"{row.locale}/")


class LayoutForm(SourceForm):
    class Meta:
        model = Layout
        fields = ["tenant", "name", "format", "body"]
        widgets = code_widgets(["body"])

    def _post_clean(self):
        super()._post_clean()
        layout = self.instance
        if not self._errors and layout.tenant_id is not None:
            partials = selectors.partials_for(tenant=layout.tenant)
            for message in validation.layout_errors(layout.body, layout.format, partials=partials):
                self.add_error("body", message)


class PartialForm(SourceForm):
    class Meta:
        model = Partial
        fields = ["tenant", "name", "body"]
        widgets = code_widgets(["body"])

    def _post_clean(self):
        super()._post_clean()
        partial = self.instance
        if not self._errors and partial.tenant_id is not None:
            others = {**selectors.partials_for(tenant=partial.tenant), partial.name: partial.body}
            for message in validation.liquid_errors(partial.body, partials=others, html=True):
                self.add_error("body", message)


class BrandForm(forms.ModelForm):
    request = None  # set per request by BrandAdmin.get_form
    logo_url = forms.URLField(required=False, assume_scheme="https", max_length=200)

    class Meta:
        model = Brand
        fields = ["tenant", "logo_url", "primary_color", "background_color", "from_name", "from_email",
                  "footer_text", "legal_address", "default_layout", "require_approval"]

    def clean(self):
        cleaned = super().clean()
        tenant, layout = cleaned.get("tenant"), cleaned.get("default_layout")
        if tenant and not services.layout_in_lineage(layout, tenant):
            self.add_error("default_layout", "Pick a layout of this tenant or one of its parents.")
        if tenant and "require_approval" in self.changed_data and not services.user_may_approve(
                self.request.user, tenant):
            self.add_error("require_approval", "Only a user who may approve templates here can change this.")
        return cleaned
