"""Journeys: the editable Journey, its immutable published versions and steps, and the runs.

A run's scheduled work is the run row itself: `due_at` is when it must next be advanced (a delay
ending, a wait timing out), claimed by the tick job with SKIP LOCKED. No Celery countdowns.
"""

from django.db import models

from apps.core.models import TenantScopedModel


class Journey(TenantScopedModel):
    class Status(models.TextChoices):
        DRAFT = "draft"
        ACTIVE = "active"
        PAUSED = "paused"
        ARCHIVED = "archived"

    key = models.SlugField(max_length=100)
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    # The draft being edited (see apps/journeys/definition.py for its shape); published as a version.
    definition = models.JSONField(default=dict, blank=True)
    live_version = models.ForeignKey("JourneyVersion", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+", editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key"], name="journey_key_unique_per_tenant"),
        ]

    def __str__(self) -> str:
        return self.name


class JourneyVersion(TenantScopedModel):
    """A published definition. Never changes: runs keep the version they entered with."""

    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    definition = models.JSONField()
    # Copied out of the definition so that an event finds the journeys it starts by index.
    trigger_event = models.CharField(max_length=200)
    is_current = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["journey", "number"], name="journey_version_number_unique"),
        ]
        indexes = [
            models.Index(fields=["tenant", "trigger_event"], name="journey_version_trigger",
                         condition=models.Q(is_current=True)),
        ]

    def __str__(self) -> str:
        return f"{self.journey} v{self.number}"


class JourneyStep(models.Model):
    """One step of a version, as a row so that messages and the path log point at it."""

    version = models.ForeignKey(JourneyVersion, on_delete=models.CASCADE, related_name="steps")
    key = models.CharField(max_length=64, help_text="The step's id within its version.")
    type = models.CharField(max_length=20)
    position = models.PositiveIntegerField()

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["version", "key"], name="journey_step_key_unique")]

    def __str__(self) -> str:
        return f"{self.key} ({self.type})"


class JourneyRun(TenantScopedModel):
    class Status(models.TextChoices):
        ACTIVE = "active"  # delaying or about to advance
        WAITING = "waiting"  # waiting for an event (or its timeout)
        COMPLETED = "completed"
        EXITED = "exited"  # an exit event or an exit step
        CANCELLED = "cancelled"  # cancellation key, archive
        FAILED = "failed"

    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="runs")
    version = models.ForeignKey(JourneyVersion, on_delete=models.PROTECT, related_name="runs")
    recipient = models.ForeignKey("recipients.Recipient", on_delete=models.CASCADE,
                                  related_name="journey_runs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    current_step = models.CharField(max_length=64, blank=True)
    # {"trigger": {...event}, "events": {step: event}, "visits": {step: n}, "messages": {step: id}}
    context = models.JSONField(default=dict)
    due_at = models.DateTimeField(null=True, blank=True)
    wait_event = models.CharField(max_length=200, blank=True)
    cancellation_key = models.CharField(max_length=255, blank=True)
    entered_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=200, blank=True)
    converted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # Every lookup an event makes (triggers' re-entry, waits, exits, goals) and the
            # recipient page: a recipient's runs, newest first.
            models.Index("tenant", "recipient", models.F("id").desc(), name="journey_run_recipient"),
            # The scheduler's queue.
            models.Index(fields=["due_at"], name="journey_run_due",
                         condition=models.Q(due_at__isnull=False)),
            models.Index(fields=["tenant", "cancellation_key"], name="journey_run_cancellation",
                         condition=~models.Q(cancellation_key="")),
        ]

    def __str__(self) -> str:
        return f"run #{self.pk} ({self.status})"


class JourneyRunStep(models.Model):
    """The path of a run: one row per step visited."""

    run = models.ForeignKey(JourneyRun, on_delete=models.CASCADE, related_name="path")
    step = models.ForeignKey(JourneyStep, on_delete=models.CASCADE, related_name="visits")
    entered_at = models.DateTimeField()
    left_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, blank=True)
    reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["run", "id"], name="journey_run_step_run"),
            models.Index(fields=["step", "outcome"], name="journey_run_step_counts"),
        ]

    def __str__(self) -> str:
        return f"{self.step.key}: {self.outcome or 'waiting'}"
