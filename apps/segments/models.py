"""A segment is a condition over recipients (profile and event history); its members are rows.

Membership is materialised (`SegmentMembership`) so that broadcasts and journeys read an audience
by index, in recipient-id order, and so that joining and leaving are events of their own.
"""

from django.db import models

from apps.core.models import TenantScopedModel


class Segment(TenantScopedModel):
    class Status(models.TextChoices):
        READY = "ready"
        COMPUTING = "computing"  # a full recompute is running (see progress_done / progress_total)

    key = models.SlugField(max_length=100)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    # The journeys' condition language (apps/journeys/conditions.py), roots `recipient` and `history`.
    conditions = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.READY, editable=False)
    member_count = models.PositiveIntegerField(default=0, editable=False)
    computed_at = models.DateTimeField(null=True, blank=True, editable=False)
    progress_done = models.PositiveIntegerField(default=0, editable=False)
    progress_total = models.PositiveIntegerField(default=0, editable=False)
    # Members change with time alone (within_last_days): the tick recomputes it (set on recompute).
    drifts = models.BooleanField(default=False, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key"], name="segment_key_unique_per_tenant"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"


class SegmentMembership(models.Model):
    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships")
    recipient = models.ForeignKey("recipients.Recipient", on_delete=models.CASCADE,
                                  related_name="segment_memberships")
    joined_at = models.DateTimeField()

    class Meta:
        constraints = [
            # Also the audience's index: a segment's members in recipient-id order (keyset pages).
            models.UniqueConstraint(fields=["segment", "recipient"], name="segment_membership_unique"),
        ]
        indexes = [models.Index(fields=["recipient"], name="segment_membership_recipient")]

    def __str__(self) -> str:
        return f"{self.recipient_id} in {self.segment_id}"
