from django.db import models

from apps.core.models import TenantScopedModel


class Event(TenantScopedModel):
    """Something a recipient did, as accepted by the API. Committed before the 2xx is sent."""

    class Source(models.TextChoices):
        API = "api", "Native API"
        SEGMENT = "segment", "Segment spec"

    class Kind(models.TextChoices):
        """The Segment call type; native API events are `track`."""

        TRACK = "track"
        IDENTIFY = "identify"
        PAGE = "page"
        SCREEN = "screen"
        GROUP = "group"
        ALIAS = "alias"

    # No database constraints on the two foreign keys: each cost a trigger and a row lock (FOR KEY
    # SHARE) per inserted event, a quarter of PostgreSQL's time for a Segment batch, and every
    # concurrent batch locked the same tenant row (docs/performance.md). Django still applies
    # on_delete (PROTECT, CASCADE) in Python; an event committed while its recipient is erased
    # can point at nothing, and the consumers skip it. No index on tenant alone: the unique
    # constraint and event_recipient_name_time lead with it.
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.PROTECT, related_name="+",
                               db_constraint=False, db_index=False)
    recipient = models.ForeignKey(
        "recipients.Recipient", null=True, on_delete=models.CASCADE, related_name="events",
        db_constraint=False,
    )
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.TRACK)
    properties = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices)
    # De-duplication key: Segment's messageId, or one Signalbox makes for native events.
    message_id = models.CharField(max_length=255)
    cancellation_key = models.CharField(max_length=255, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    # The client's timestamp was too far in the future and was replaced by received_at.
    timestamp_clamped = models.BooleanField(default=False)
    # Set once the consumers (journey engine) have seen the event; a sweeper re-enqueues the rest.
    processed_at = models.DateTimeField(null=True, blank=True)
    process_error = models.TextField(blank=True, db_default="",
                                     help_text="A consumer failed on this event: why (it was skipped).")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "message_id"], name="event_message_id_unique_per_tenant"
            )
        ]
        indexes = [
            # What journeys ask: "did recipient R do X, and when last?"
            models.Index(
                "tenant", "recipient", "name", models.F("occurred_at").desc(),
                name="event_recipient_name_time",
            ),
            models.Index(
                fields=["received_at"], name="event_unprocessed",
                condition=models.Q(processed_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} #{self.pk}"


class IdempotencyKey(TenantScopedModel):
    """The first response to a POST carrying `Idempotency-Key`, replayed to retries for 24 h."""

    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    # Null while the first request is still in flight.
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key"], name="idempotency_key_unique_per_tenant")
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_key_created")]
