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
ACCEPTED_FROM = {Message.Source.API: "Accepted from the API",
                 Message.Source.JOURNEY: "Created by a journey step",
                 Message.Source.BROADCAST: "Created by a broadcast", Message.Source.TEST: "A test send"}


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
    return message_create_many(messages=[message])[0]


def message_create_many(*, messages: list[Message]) -> list[Message]:
    """Store new messages (scheduled if send_at is in the future) and enqueue them on commit, in
    a few statements whatever their number. A message whose dedupe_key its tenant already has is
    not stored again: the existing one is returned in its place."""
    now = clock.now()
    with transaction.atomic():
        existing = {(m.tenant_id, m.dedupe_key): m for m in Message.objects.filter(
            tenant__in={m.tenant_id for m in messages}, dedupe_key__in=[m.dedupe_key for m in messages])}
        new = [m for m in messages if (m.tenant_id, m.dedupe_key) not in existing]
        for message in new:
            scheduled = message.send_at is not None and message.send_at > now
            message.status = Status.SCHEDULED if scheduled else Status.QUEUED
            message.next_attempt_at = message.send_at if scheduled else None
            message.created_at = message.updated_at = now
        Message.objects.bulk_create(new)
        StatusEvent.objects.bulk_create([
            StatusEvent(message=m, status=m.status, reason_code="accepted", reason=ACCEPTED_FROM[m.source],
                        created_at=now,
                        detail={"send_at": m.send_at.isoformat()} if m.status == Status.SCHEDULED else {})
            for m in new])
        enqueue_sends([m.pk for m in new if m.status == Status.QUEUED])
    return [existing.get((m.tenant_id, m.dedupe_key), m) for m in messages]


def enqueue_sends(message_ids: list[int]) -> None:
    """`messaging.send` tasks for these messages, SIGNALBOX_SEND_BATCH per task, after commit."""
    from apps.messaging.tasks import send_messages

    size = settings.SIGNALBOX_SEND_BATCH
    for start in range(0, len(message_ids), size):
        enqueue_on_commit(send_messages, message_ids[start:start + size])


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
        enqueue_sends([m.pk for m in due])
    return len(due)


def messages_rescue_stuck() -> int:
    """Tick job: a message left `sending` (its worker died) or `queued` without a task running
    it (the broker lost it) for longer than the stuck timeout is queued and enqueued again."""
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
        enqueue_sends([m.pk for m in stuck])
    if stuck:
        logger.warning("re-enqueued %d stuck messages", len(stuck))
    return len(stuck)

