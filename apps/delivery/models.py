from django.db import models

from apps.core import crypto
from apps.core.models import TenantScopedModel
from apps.messaging.models import Channel


class ProviderConfig(TenantScopedModel):
    """A provider a tenant sends through. Several per channel, tried in `position` order; a
    sub-tenant without any for a channel uses its parent's."""

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
