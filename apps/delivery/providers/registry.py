"""Provider kinds → their classes, imported only when used."""

from django.utils.module_loading import import_string

from apps.delivery.providers.base import Provider

PROVIDERS = {
    "log": "apps.delivery.providers.log.LogProvider",
    "smtp": "apps.delivery.providers.smtp.SmtpProvider",
    "webhook": "apps.delivery.providers.webhook.WebhookProvider",
    "sendgrid": "apps.delivery.providers.esp.SendGridProvider",
    "postmark": "apps.delivery.providers.esp.PostmarkProvider",
    "anymail": "apps.delivery.providers.esp.AnymailProvider",
}


def provider_for(config) -> Provider:
    """An instance for a ProviderConfig row (or the log provider for None)."""
    kind = config.kind if config is not None else "log"
    return import_string(PROVIDERS[kind])(config)
