import secrets
import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse

from apps.core import crypto
from apps.core.models import TenantScopedModel
from apps.messaging.models import Channel


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


class ProviderConfig(TenantScopedModel):
    """A provider a tenant sends through. Several per channel, tried in `position` order; a
    sub-tenant without any for a channel uses its parent's. The provider reports bounces,
    complaints and deliveries to /webhooks/providers/<public_id>/<webhook_secret>/."""

    name = models.CharField(max_length=100)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    kind = models.CharField(max_length=20, help_text="Which implementation: see the registry.")
    position = models.PositiveSmallIntegerField(default=0, help_text="Lower is tried first.")
    enabled = models.BooleanField(default=True)
    from_email = models.EmailField(blank=True)
    from_name = models.CharField(max_length=100, blank=True)
    settings = models.JSONField(default=dict, blank=True,
                                help_text="Non-secret options (host, port, API base URL, …).")
    credentials_encrypted = models.TextField(blank=True, editable=False)
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Shown again in the admin (the URL to paste into the provider), so stored as is: it only
    # lets a caller report events about this config's messages.
    webhook_secret = models.CharField(max_length=64, default=new_webhook_secret, editable=False)

    class Meta:
        ordering = ["channel", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="provider_name_unique_per_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind}, {self.channel})"

    @property
    def credentials(self) -> dict:
        return crypto.decrypt_json(self.credentials_encrypted)

    def set_credentials(self, values: dict) -> None:
        self.credentials_encrypted = crypto.encrypt_json(values)

    def webhook_url(self) -> str:
        """Where the provider reports bounces, complaints and deliveries (docs/policy.md)."""
        path = reverse("provider-webhook", args=[self.public_id, self.webhook_secret])
        return settings.SIGNALBOX_PUBLIC_URL.rstrip("/") + path
