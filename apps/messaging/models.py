from django.db import models

from apps.core.models import TenantScopedModel


class Status(models.TextChoices):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"
    # Not a status a message stays in: the timeline's record of a move to the next channel.
    REROUTED = "rerouted"


# Every legal move; apps.messaging.services.message_transition refuses the rest.
TRANSITIONS: dict[str, set[str]] = {
    Status.SCHEDULED: {Status.QUEUED, Status.CANCELLED, Status.EXPIRED},
    Status.QUEUED: {Status.SENDING, Status.CANCELLED, Status.EXPIRED, Status.SUPPRESSED,
                    Status.FAILED, Status.SCHEDULED},
    # Back to queued: a retry later, or a move to the next channel (a `rerouted` event).
    # Scheduled: deferred by policy (quiet hours, a frequency cap) and decided again when due.
    Status.SENDING: {Status.SENT, Status.FAILED, Status.QUEUED, Status.EXPIRED, Status.SUPPRESSED,
                     Status.SCHEDULED},
    Status.SENT: {Status.DELIVERED, Status.BOUNCED, Status.FAILED},
    Status.DELIVERED: {Status.BOUNCED},
}
FINAL = {Status.FAILED, Status.CANCELLED, Status.SUPPRESSED, Status.EXPIRED, Status.BOUNCED}
# What takes a slot under a frequency cap (apps.policy): `sent_at` is stamped when a message passes
# the cap check (before the provider call), so a message still being sent counts; a failed one no
# longer does.
HOLDS_SLOT = [Status.SENDING, Status.SENT, Status.DELIVERED]


class Priority(models.TextChoices):
    CRITICAL = "critical"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    PUSH = "push", "Push"
    CHAT = "chat", "Chat"
    WEBHOOK = "webhook", "Webhook"
    INBOX = "inbox", "Inbox"


class Message(TenantScopedModel):
    """One send to one recipient: the row every decision and attempt hangs off."""

    class Source(models.TextChoices):
        API = "api"
        JOURNEY = "journey"
        BROADCAST = "broadcast"
        TEST = "test"

    recipient = models.ForeignKey("recipients.Recipient", on_delete=models.PROTECT, related_name="messages")
    channels = models.JSONField(help_text="The requested channels, in fallback order.")
    channel = models.CharField(max_length=10, choices=Channel.choices, blank=True,
                               help_text="The channel chosen by routing; blank until routed.")
    category = models.CharField(max_length=64, default="general")
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.API)
    event = models.ForeignKey("events.Event", null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    journey_run = models.ForeignKey("journeys.JourneyRun", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="messages")
    journey_step = models.ForeignKey("journeys.JourneyStep", null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="messages")
    broadcast = models.ForeignKey("broadcasts.Broadcast", null=True, blank=True, on_delete=models.PROTECT,
                                  related_name="messages", db_index=False)
    template_key = models.CharField(max_length=100, blank=True)
    template_version = models.ForeignKey(
        "content.TemplateVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The version rendered for the send: the one published at the moment of sending.")
    content = models.JSONField(default=dict, blank=True, help_text="Per-channel content as requested.")
    data = models.JSONField(default=dict, blank=True)
    rendered = models.JSONField(default=dict, blank=True, help_text="What was sent, as sent.")
    test_mode = models.BooleanField(default=False, help_text="Sent with a test key: log provider only.")
    provider = models.CharField(max_length=100, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    send_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # api:<idempotency key or uuid>:<recipient> | run:<run>:<step> | bc:<broadcast>:<recipient>
    dedupe_key = models.CharField(max_length=400)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "dedupe_key"], name="message_dedupe_key_unique_per_tenant"),
        ]
        indexes = [
            # A recipient's history, newest first (keyset pagination on id).
            models.Index("tenant", "recipient", models.F("id").desc(), name="message_recipient_history"),
            models.Index(fields=["tenant", "category"], name="message_tenant_category"),
            # Frequency caps and suppression rules count a recipient's messages that hold a slot
            # (apps.policy COUNTED) in a rolling window: an index-only scan, hence the columns
            # the count groups and filters by (INCLUDE is PostgreSQL's; elsewhere a plain index).
            models.Index(fields=["tenant", "recipient", "sent_at"], include=["category", "channel", "id"],
                         condition=models.Q(status__in=HOLDS_SLOT), name="message_slots"),
            # Providers' reports (bounces, deliveries) name the message by the id they gave it.
            models.Index(fields=["provider_message_id"], name="message_provider_message_id",
                         condition=~models.Q(provider_message_id="")),
            # What the scheduler and sweeper look for.
            models.Index(fields=["next_attempt_at"], name="message_due",
                         condition=models.Q(status__in=["scheduled", "queued", "sending"])),
            # A broadcast's progress (GROUP BY status), pause, resume and cancel.
            models.Index(fields=["broadcast", "status"], name="message_broadcast_status",
                         condition=models.Q(broadcast__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"message #{self.pk} ({self.status})"


class StatusEvent(models.Model):
    """The timeline: every status change of a message, with the reason for it."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="timeline")
    status = models.CharField(max_length=12, choices=Status.choices)
    reason_code = models.CharField(max_length=64, blank=True)
    reason = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["message", "id"], name="status_event_message")]

    def __str__(self) -> str:
        return f"{self.status} ({self.reason_code})" if self.reason_code else self.status


class Attempt(models.Model):
    """One provider call."""

    class Outcome(models.TextChoices):
        ACCEPTED = "accepted"
        RETRYABLE = "retryable"  # safe to fail over or retry
        AMBIGUOUS = "ambiguous"  # may have been accepted: retry the same provider, same key
        PERMANENT = "permanent"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attempt_rows")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    provider = models.CharField(max_length=100)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    request_summary = models.JSONField(default=dict, blank=True)
    response_code = models.IntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    error_class = models.CharField(max_length=100, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["message", "id"], name="attempt_message")]

    def __str__(self) -> str:
        return f"{self.provider} ({self.outcome})"
