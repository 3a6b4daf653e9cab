from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html

from apps.core.admin import JSONField, TenantScopedAdmin
from apps.delivery.models import ProviderConfig
from apps.delivery.providers.base import ProviderError
from apps.delivery.providers.registry import PROVIDERS, provider_for


class ProviderConfigForm(forms.ModelForm):
    kind = forms.ChoiceField(choices=[(k, k) for k in PROVIDERS])
    credentials = JSONField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="JSON, e.g. {\"username\": \"…\", \"password\": \"…\"} (smtp), {\"api_key\": \"…\"} "
                  "(sendgrid, most ESPs), {\"server_token\": \"…\"} (postmark); add the ESP's webhook "
                  "signing key to have its webhooks' signatures checked, e.g. "
                  "\"tracking_webhook_verification_key\" (sendgrid), \"webhook_signing_key\" (mailgun). "
                  "Stored encrypted and never shown again; leave empty to keep the current credentials.")

    class Meta:
        model = ProviderConfig
        fields = ["tenant", "name", "channel", "kind", "position", "enabled", "from_email",
                  "from_name", "settings"]
        help_texts = {"settings": "JSON, e.g. {\"host\": \"…\", \"port\": 587} (smtp), "
                                  "{\"api_url\": \"https://api.sendgrid.com/v3/\"} (sendgrid, postmark), "
                                  "{\"esp\": \"mailgun\", \"api_url\": \"…\"} (anymail)."}

    def clean(self):
        cleaned = super().clean()
        kind, channel = cleaned.get("kind"), cleaned.get("channel")
        if kind and channel and channel not in provider_for(ProviderConfig(kind=kind)).channels:
            self.add_error("channel", f"A {kind} provider cannot send {channel}.")
        if "settings" in cleaned and cleaned["settings"] is None:  # left empty: no options
            cleaned["settings"] = {}
        settings, credentials = cleaned.get("settings"), cleaned.get("credentials")
        if settings is not None and not isinstance(settings, dict):
            self.add_error("settings", "A JSON object.")
        if credentials not in (None, "") and not isinstance(credentials, dict):
            self.add_error("credentials", "A JSON object.")
        if kind and not self.has_error("settings") and not self.has_error("credentials"):
            self._check_config(kind, cleaned)
        return cleaned

    def _check_config(self, kind: str, cleaned: dict) -> None:
        """The provider's own checks, on the config as it would be saved."""
        candidate = ProviderConfig(kind=kind, channel=cleaned.get("channel") or "",
                                   settings=cleaned.get("settings") or {},
                                   from_email=cleaned.get("from_email") or "",
                                   from_name=cleaned.get("from_name") or "")
        try:
            candidate.set_credentials(cleaned.get("credentials") or self.instance.credentials)
        except ValueError as exc:  # the stored credentials no longer decrypt
            self.add_error("credentials", f"{exc} Enter the credentials again.")
            return
        for field, message in provider_for(candidate).config_errors():
            if not self.has_error(field):
                self.add_error(field, message)

    def save(self, commit=True):
        if self.cleaned_data.get("credentials"):
            self.instance.set_credentials(self.cleaned_data["credentials"])
        return super().save(commit)


@admin.register(ProviderConfig)
class ProviderConfigAdmin(TenantScopedAdmin):
    form = ProviderConfigForm
    list_display = ["name", "tenant", "channel", "kind", "position", "enabled", "credentials_set"]
    list_filter = ["channel", "kind", "enabled"]
    list_select_related = ["tenant"]
    ordering = ["tenant", "channel", "position"]
    actions = ["test_connection"]

    @admin.display(description="Credentials", boolean=True)
    def credentials_set(self, obj):
        return bool(obj.credentials_encrypted)

    def get_fields(self, request, obj=None):
        return [*ProviderConfigForm.Meta.fields, "credentials", "webhook_url"]

    def get_readonly_fields(self, request, obj=None):
        return ["webhook_url"]

    @admin.display(description="Webhook URL")
    def webhook_url(self, obj):
        if obj is None or obj.pk is None:
            return "Save the provider to get the URL its bounces and complaints are reported to."
        return format_html(
            "<code>{}</code><br>Paste it into the provider's event (tracking) webhook settings: its "
            "bounces, spam complaints and unsubscribes then go on the suppression list, and each "
            "message's timeline shows its delivery. Keep it secret: it is the webhook's password.",
            obj.webhook_url())

    @admin.action(description="Test connection (sends nothing)")
    def test_connection(self, request, queryset):
        for config in queryset:
            try:
                detail = provider_for(config).test_connection()
                self.message_user(request, f"{config}: {detail}", messages.SUCCESS)
            except (ProviderError, ValueError) as exc:
                self.message_user(request, f"{config}: {exc}", messages.ERROR)

