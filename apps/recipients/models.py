import contextlib

from django.core.exceptions import ValidationError
from django.db import models

from apps.core.models import TenantScopedModel
from apps.core.validators import normalize_locale, validate_locale, validate_timezone
from apps.recipients.validators import normalize_phone, validate_phone


class Recipient(TenantScopedModel):
    """Someone messages go to. Field names are the API's names."""

    # Null for anonymous visitors known only by an alias (added by the Ingest issue).
    external_id = models.CharField(max_length=255, null=True, blank=True)
    email = models.EmailField(max_length=254, blank=True)
    phone = models.CharField(
        max_length=20, blank=True, validators=[validate_phone], help_text="E.164, e.g. +14155550123"
    )
    locale = models.CharField(max_length=35, blank=True, validators=[validate_locale])
    timezone = models.CharField(
        max_length=64, blank=True, validators=[validate_timezone], help_text="IANA, e.g. Europe/Berlin"
    )
    attributes = models.JSONField(default=dict, blank=True)
    # Set when an anonymous visitor turns out to be a known recipient (Segment identify/alias):
    # their events moved to `merged_into`, and lookups follow the link.
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    erased_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "external_id"], name="recipient_external_id_unique_per_tenant"
            )
        ]
        indexes = [
            models.Index(fields=["tenant", "email"], name="recipient_tenant_email"),
            models.Index(fields=["tenant", "phone"], name="recipient_tenant_phone"),
        ]

    def __str__(self) -> str:
        return self.external_id or self.email or self.phone or f"anonymous #{self.pk}"

    def clean(self) -> None:
        super().clean()
        # Stored normalised so that search and de-duplication match one spelling. Invalid values
        # are left as they are: their field validators report them.
        self.email = self.email.strip().lower()
        with contextlib.suppress(ValidationError):
            self.phone = normalize_phone(self.phone.strip())
        if self.locale:
            self.locale = normalize_locale(self.locale)


class RecipientAlias(TenantScopedModel):
    """Another id a recipient is known by: a Segment `anonymousId` or a former `userId`."""

    recipient = models.ForeignKey(Recipient, on_delete=models.CASCADE, related_name="aliases")
    alias = models.CharField(max_length=255)

    class Meta:
        verbose_name_plural = "recipient aliases"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "alias"], name="recipient_alias_unique_per_tenant")
        ]

    def __str__(self) -> str:
        return self.alias
