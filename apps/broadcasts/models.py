"""A broadcast: one template sent to an audience (a segment, or an uploaded list), now, later, or
at a wall-clock time in each recipient's own zone. Its messages are ordinary `Message` rows
(`source=broadcast`, `dedupe_key` `bc:<broadcast>:<recipient>`); see docs/broadcasts.md."""

from django.conf import settings
from django.db import models

from apps.core.models import TenantScopedModel
from apps.messaging.models import Priority


class Broadcast(TenantScopedModel):
    class Status(models.TextChoices):
        DRAFT = "draft"
        SCHEDULED = "scheduled"  # started, waiting for send_at
        SENDING = "sending"  # fanning out, or messages still on their way
        PAUSED = "paused"
        CANCELLED = "cancelled"
        COMPLETED = "completed"

    name = models.CharField(max_length=200)
    template_key = models.CharField(max_length=100, help_text="Key of a published template.")
    channels = models.JSONField(default=list, blank=True,
                                help_text="Fallback order; empty: the template's channels.")
    category = models.CharField(max_length=64, blank=True, help_text="Blank: the template's category.")
    priority = models.CharField(max_length=10, choices=Priority.choices, blank=True,
                                help_text="Blank: the category's default priority.")
    data = models.JSONField(default=dict, blank=True, help_text="`data` for the template.")
    # The audience: a segment, or else the broadcast's own BroadcastRecipient rows.
    segment = models.ForeignKey("segments.Segment", null=True, blank=True, on_delete=models.PROTECT,
                                related_name="broadcasts")
    send_at = models.DateTimeField(null=True, blank=True, help_text="Blank: as soon as started.")
    local_time = models.BooleanField(
        default=False, help_text="Send at send_at's date and time (as written in UTC) in each "
        "recipient's own time zone (the tenant's default when they have none).")
    test_mode = models.BooleanField(default=False, editable=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT, editable=False)
    # Fan-out progress: the audience is paged in recipient-id order; `cursor` is the last id done.
    cursor = models.BigIntegerField(default=0, editable=False)
    created_count = models.PositiveIntegerField(default=0, editable=False)
    fanned_out_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The audience's size when started; the messages created once the fan-out is done.
    targeted = models.PositiveIntegerField(default=0, editable=False)
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", editable=False)

    class Meta:
        indexes = [models.Index(fields=["status", "send_at"], name="broadcast_due",
                                condition=models.Q(status__in=["scheduled", "sending"]))]

    def __str__(self) -> str:
        return self.name


class BroadcastRecipient(models.Model):
    """An uploaded audience (CSV or the API's `recipients`), resolved to recipients."""

    broadcast = models.ForeignKey(Broadcast, on_delete=models.CASCADE, related_name="recipients")
    recipient = models.ForeignKey("recipients.Recipient", on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            # Also the audience's index: keyset pages in recipient-id order, like a segment's.
            models.UniqueConstraint(fields=["broadcast", "recipient"], name="broadcast_recipient_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.recipient_id} in {self.broadcast_id}"
