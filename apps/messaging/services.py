"""Writes for messages: creation, the one status-change service, cancel, and the sweepers."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction

from apps.core import clock
from apps.core.errors import Conflict
from apps.core.queue import enqueue_on_commit
from apps.messaging.models import TRANSITIONS, Message, Status, StatusEvent

logger = logging.getLogger(__name__)
SWEEP_BATCH = 1000


class IllegalTransition(Exception):
    pass


def message_transition(*, message: Message, to: str, reason_code: str = "", reason: str = "",
                       detail: dict | None = None, **fields) -> bool:
    """Move `message` to status `to` and add the timeline entry, if it is still in the status we
    read (a conditional UPDATE: of two racing workers only one wins). Other `fields` are saved
    with it. Returns False if another process moved it first; raises on an illegal move."""
    if to not in TRANSITIONS.get(message.status, set()):
        raise IllegalTransition(f"{message.status} → {to} is not a legal move (message {message.pk})")
    now = clock.now()
    with transaction.atomic():
        moved = Message.objects.filter(pk=message.pk, status=message.status).update(
            status=to, updated_at=now, **fields)
        if not moved:
            return False
        StatusEvent.objects.create(message=message, status=to, reason_code=reason_code,
                                   reason=reason, detail=detail or {}, created_at=now)
    message.status, message.updated_at = to, now
    for name, value in fields.items():
        setattr(message, name, value)
    return True


def message_note(*, message: Message, status: str, reason_code: str, reason: str = "",
                 detail: dict | None = None) -> None:
    """A timeline entry that is not a status change (e.g. `rerouted`)."""
    StatusEvent.objects.create(message=message, status=status, reason_code=reason_code,
                               reason=reason, detail=detail or {}, created_at=clock.now())


def message_create(*, message: Message) -> Message:
    """Store a new message (scheduled if send_at is in the future) and enqueue it on commit.
    A second create with the same dedupe_key returns the first message instead."""
    from apps.messaging.tasks import send_message

    now = clock.now()
    scheduled = message.send_at is not None and message.send_at > now
    message.status = Status.SCHEDULED if scheduled else Status.QUEUED
    message.next_attempt_at = message.send_at if scheduled else None
    with transaction.atomic():
        existing = Message.objects.filter(tenant=message.tenant, dedupe_key=message.dedupe_key).first()
        if existing is not None:
            return existing
        message.save()
        StatusEvent.objects.create(message=message, status=message.status, reason_code="accepted",
                                   reason="Accepted from the API", created_at=now,
                                   detail={"send_at": message.send_at.isoformat()} if scheduled else {})
        if not scheduled:
            enqueue_on_commit(send_message, message.pk)
    return message


def message_cancel(*, message: Message, reason: str = "Cancelled through the API") -> Message:
    if message.status not in (Status.SCHEDULED, Status.QUEUED) or not message_transition(
        message=message, to=Status.CANCELLED, reason_code="cancelled", reason=reason
    ):
        message.refresh_from_db(fields=["status"])
        raise Conflict(f"Message {message.pk} is {message.status}; only scheduled or queued "
                       "messages can be cancelled.")
    return message


def messages_release_due() -> int:
    """Tick job: scheduled messages whose time has come, and retries whose back-off is over,
    are (re-)queued and enqueued. Rows are claimed with SKIP LOCKED so ticks never collide."""
    from apps.messaging.tasks import send_message

    now = clock.now()
    with transaction.atomic():
        due = list(
            Message.objects.select_for_update(skip_locked=True)
            .filter(status__in=[Status.SCHEDULED, Status.QUEUED], next_attempt_at__lte=now)
            .order_by("next_attempt_at")[:SWEEP_BATCH]
        )
        for message in due:
            if message.status == Status.SCHEDULED:
                message_transition(message=message, to=Status.QUEUED, reason_code="due",
                                   reason="Scheduled time reached", next_attempt_at=None)
            else:
                Message.objects.filter(pk=message.pk).update(next_attempt_at=None)
            enqueue_on_commit(send_message, message.pk)
    return len(due)


def messages_rescue_stuck() -> int:
    """Tick job: a message left `sending` (its worker died) or `queued` without a task running
    it (the broker lost it) for longer than the stuck timeout is queued and enqueued again."""
    from apps.messaging.tasks import send_message

    cutoff = clock.now() - timedelta(seconds=settings.SIGNALBOX_MESSAGE_STUCK_SECONDS)
    with transaction.atomic():
        stuck = list(
            Message.objects.select_for_update(skip_locked=True)
            .filter(status__in=[Status.SENDING, Status.QUEUED], next_attempt_at__isnull=True,
                    updated_at__lt=cutoff)
            .order_by("updated_at")[:SWEEP_BATCH]
        )
        for message in stuck:
            if message.status == Status.SENDING:
                message_transition(message=message, to=Status.QUEUED, reason_code="stuck",
                                   reason="No worker finished sending it; trying again.")
            else:
                Message.objects.filter(pk=message.pk).update(updated_at=clock.now())
            enqueue_on_commit(send_message, message.pk)
    if stuck:
        logger.warning("re-enqueued %d stuck messages", len(stuck))
    return len(stuck)

