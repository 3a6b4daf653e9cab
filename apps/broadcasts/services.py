"""Writes for broadcasts: create, start, the fan-out, pause / resume / cancel, the tick job.

The fan-out pages the audience in recipient-id order (keyset, `SIGNALBOX_BROADCAST_PAGE` ids a
page) and creates each page's messages with `message_create_many` (dedupe key
`bc:<broadcast>:<recipient>`) in the transaction that advances the cursor: a page redone after a
crash finds its messages already there and creates nothing twice. Sends are enqueued after
commit by `message_create_many`. Progress is read from the messages (selectors.py).
"""

import logging
import time
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction

from apps.broadcasts.models import Broadcast, BroadcastRecipient
from apps.broadcasts.selectors import audience_ids
from apps.content.services import template_get_published
from apps.core import clock
from apps.core.errors import Conflict, InvalidInput, NotFound
from apps.core.queue import enqueue_on_commit
from apps.messaging.models import Channel, Message, Priority, Status, StatusEvent
from apps.messaging.services import enqueue_sends, message_create_many
from apps.policy.selectors import PolicyLookup
from apps.recipients.models import Recipient
from apps.segments.models import Segment, SegmentMembership

logger = logging.getLogger(__name__)
MAX_INLINE_RECIPIENTS = 10_000
# The earliest wall clock on Earth (UTC+14): a local-time broadcast starts its fan-out this long
# before send_at, so that every zone's messages exist (scheduled) before their moment.
LOCAL_TIME_LEAD = timedelta(hours=14)
Status_ = Broadcast.Status


# --- Creating -------------------------------------------------------------------------------

def recipients_by_external_id(*, tenant, external_ids: list[str]) -> tuple[dict[str, int], list[str]]:
    """external id → recipient id (a merged recipient's survivor), and the ids nobody has."""
    found: dict[str, int] = {}
    wanted = list(dict.fromkeys(external_ids))
    for start in range(0, len(wanted), 5000):
        rows = Recipient.objects.filter(tenant=tenant, external_id__in=wanted[start:start + 5000],
                                        erased_at__isnull=True)
        found |= {ext: merged or pk
                  for ext, pk, merged in rows.values_list("external_id", "id", "merged_into_id")}
    return found, [ext for ext in wanted if ext not in found]


def broadcast_create(**fields) -> Broadcast:
    """A draft broadcast (see broadcast_build for the arguments and checks), saved."""
    broadcast, recipient_ids = broadcast_build(**fields)
    return broadcast_save(broadcast=broadcast, recipient_ids=recipient_ids)


def broadcast_build(*, tenant, name: str, template_key: str, segment_key: str = "",
                    external_ids: list[str] | None = None, channels: list[str] | None = None,
                    category: str = "", priority: str = "", data: dict | None = None,
                    send_at: datetime | None = None, local_time: bool = False, created_by=None,
                    test_mode: bool = False) -> tuple[Broadcast, list[int]]:
    """A draft broadcast, checked but not saved, and its listed recipients' ids: a published
    template, a known segment or known external ids (not both), a category of the tenant.
    Raises InvalidInput naming each field at fault (`recipients.<index>` for unknown ids)."""
    errors: dict[str, list[str]] = {}
    version = None
    try:
        version = template_get_published(tenant, template_key)
    except NotFound:
        errors["template"] = [f"No published template has the key {template_key!r}."]
    segment = None
    if bool(segment_key) == (external_ids is not None):
        one = "Give `segment` (a segment key) or `recipients` (external ids)"
        errors["segment"] = [f"{one}, not both." if segment_key else f"{one}."]
    elif segment_key:
        segment = Segment.objects.filter(tenant=tenant, key=segment_key).first()
        if segment is None:
            errors["segment"] = [f"No segment has the key {segment_key!r}."]
    recipient_ids: list[int] = []
    if external_ids is not None and "segment" not in errors:
        if not 0 < len(external_ids) <= MAX_INLINE_RECIPIENTS:
            errors["recipients"] = [f"A list of 1 to {MAX_INLINE_RECIPIENTS:,} external ids."]
        else:
            found, unknown = recipients_by_external_id(tenant=tenant, external_ids=external_ids)
            for ext in unknown[:100]:
                errors.setdefault(f"recipients.{external_ids.index(ext)}", []).append(
                    f"No recipient has the external id {ext!r}.")
            if unknown:
                errors.setdefault("recipients", []).append(f"{len(unknown)} unknown external id(s).")
            recipient_ids = sorted(set(found.values()))
    # In the Channel order (jsonb does not keep the compiled content's key order).
    template_channels = [c for c in Channel.values if version and c in version.compiled["locales"][""]]
    if channels:
        missing = [c for c in channels if c not in template_channels]
        if version and missing:
            errors["channels"] = [f"The template has no content for {', '.join(missing)}."]
    category = category or (version.template.category if version else "") or "general"
    found_category = PolicyLookup()(tenant=tenant).category(category)
    if found_category is None:
        errors["category"] = [f"{category!r} is not a category of this tenant."]
    if priority and priority not in Priority.values:
        errors["priority"] = [f"One of {', '.join(Priority.values)}."]
    if local_time and send_at is None:
        errors["send_at"] = ["A local-time broadcast needs `send_at` (the wall-clock time to send at)."]
    if errors:
        raise InvalidInput("Invalid broadcast: " + "; ".join(errors), fields=errors)
    broadcast = Broadcast(
        tenant=tenant, name=name or template_key, template_key=template_key,
        channels=list(channels or template_channels), category=category,
        priority=priority or found_category.default_priority, data=data or {}, segment=segment,
        send_at=send_at, local_time=local_time, created_by=created_by, test_mode=test_mode)
    return broadcast, recipient_ids


def broadcast_save(*, broadcast: Broadcast, recipient_ids: list[int]) -> Broadcast:
    with transaction.atomic():
        broadcast.save()
        BroadcastRecipient.objects.bulk_create(
            [BroadcastRecipient(broadcast=broadcast, recipient_id=pk) for pk in recipient_ids],
            batch_size=5000)
    return broadcast


def _locked(broadcast: Broadcast) -> Broadcast:
    return Broadcast.objects.select_for_update().get(pk=broadcast.pk)


def _due_at(broadcast: Broadcast) -> datetime | None:
    if broadcast.send_at is None:
        return None
    return broadcast.send_at - LOCAL_TIME_LEAD if broadcast.local_time else broadcast.send_at


def broadcast_start(*, broadcast: Broadcast) -> Broadcast:
    """Draft → scheduled (send_at ahead) or sending (the fan-out task is enqueued)."""
    with transaction.atomic():
        broadcast = _locked(broadcast)
        if broadcast.status != Status_.DRAFT:
            raise Conflict(f"Broadcast {broadcast.pk} is {broadcast.status}; only a draft can be started.")
        due = _due_at(broadcast)
        if due is not None and due > clock.now():
            broadcast.status = Status_.SCHEDULED
            broadcast.save(update_fields=["status"])
        else:
            _begin(broadcast)
    return broadcast


def _begin(broadcast: Broadcast) -> None:
    """(Under the broadcast's lock.) Sending: count the audience, enqueue the fan-out."""
    from apps.broadcasts.tasks import fan_out

    if broadcast.segment_id:
        broadcast.targeted = SegmentMembership.objects.filter(segment_id=broadcast.segment_id).count()
    else:
        broadcast.targeted = BroadcastRecipient.objects.filter(broadcast=broadcast).count()
    broadcast.status, broadcast.started_at = Status_.SENDING, clock.now()
    broadcast.save(update_fields=["status", "targeted", "started_at"])
    enqueue_on_commit(fan_out, broadcast.pk)


# --- The fan-out ----------------------------------------------------------------------------

def broadcast_fan_out_page(*, broadcast_id: int) -> bool:
    """Create the messages of the next page of the audience; True if there may be more.

    The broadcast row is locked (SKIP LOCKED: a second fan-out of the same broadcast returns at
    once) and must still be `sending`; pause and cancel wait for the page to commit."""
    now = clock.now()
    with transaction.atomic():
        broadcast = (Broadcast.objects.select_for_update(skip_locked=True)
                     .filter(pk=broadcast_id, status=Status_.SENDING, fanned_out_at__isnull=True).first())
        if broadcast is None or _segment_computing(broadcast):
            return False
        page = settings.SIGNALBOX_BROADCAST_PAGE
        ids = audience_ids(broadcast, after_id=broadcast.cursor, limit=page)
        if ids:
            send_at = _local_send_times(broadcast, ids, now) if broadcast.local_time else {}
            message_create_many(messages=[Message(
                tenant_id=broadcast.tenant_id, recipient_id=pk, channels=broadcast.channels,
                category=broadcast.category, priority=broadcast.priority, source=Message.Source.BROADCAST,
                broadcast_id=broadcast.pk, template_key=broadcast.template_key, data=broadcast.data,
                test_mode=broadcast.test_mode, send_at=send_at.get(pk), dedupe_key=f"bc:{broadcast.pk}:{pk}",
            ) for pk in ids])
            broadcast.cursor, broadcast.created_count = ids[-1], broadcast.created_count + len(ids)
        fields = ["cursor", "created_count"]
        if len(ids) < page:
            broadcast.fanned_out_at, broadcast.targeted = now, broadcast.created_count
            fields += ["fanned_out_at", "targeted"]
        broadcast.save(update_fields=fields)
    return len(ids) == page


def _segment_computing(broadcast: Broadcast) -> bool:
    """The audience is a segment being recomputed: its members are not known yet, so the fan-out
    waits (the tick's stall check enqueues it again, SIGNALBOX_BROADCAST_STALL_SECONDS later)."""
    return bool(broadcast.segment_id) and Segment.objects.filter(
        pk=broadcast.segment_id, status=Segment.Status.COMPUTING).exists()


def broadcast_fan_out(*, broadcast_id: int, budget_seconds: float = 60.0) -> None:
    """The remaining pages, one transaction each (a crash loses at most the page in progress).
    After `budget_seconds` a fresh task takes over, well inside the tasks' time limit."""
    from apps.broadcasts.tasks import fan_out

    deadline = time.monotonic() + budget_seconds
    while broadcast_fan_out_page(broadcast_id=broadcast_id):
        if time.monotonic() > deadline:
            enqueue_on_commit(fan_out, broadcast_id)
            return


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local_send_times(broadcast: Broadcast, recipient_ids: list[int], now: datetime) -> dict[int, datetime]:
    """Recipient id → the moment send_at's wall-clock time (as written in UTC) comes in their
    zone (the tenant's default zone when they have none). A moment already past is left out:
    that message goes now."""
    wall = broadcast.send_at.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)
    default = broadcast.tenant.effective_default_timezone()
    zones = Recipient.objects.filter(pk__in=recipient_ids).values_list("id", "timezone")
    moments = {}
    for pk, zone in zones:
        try:
            moment = wall.replace(tzinfo=_zone(zone or default))
        except (KeyError, ValueError):  # an unknown zone name stored before validation
            moment = wall.replace(tzinfo=_zone(default))
        if moment > now:
            moments[pk] = moment
    return moments


# --- Pause, resume, cancel ------------------------------------------------------------------

def _update_messages(broadcast: Broadcast, set_sql: str, where_sql: str, params: list) -> list[int]:
    """One UPDATE of the broadcast's messages (over the (broadcast, status) index); their ids."""
    table = Message._meta.db_table
    with connection.cursor() as cursor:
        # The SQL fragments are this module's constants; values are parameters.
        cursor.execute(f"UPDATE {table} SET {set_sql} WHERE {where_sql} AND broadcast_id = %s "  # noqa: S608
                       "RETURNING id", [*params, broadcast.pk])
        return [row[0] for row in cursor.fetchall()]


def _timeline(ids: list[int], status: str, reason_code: str, reason: str, now: datetime) -> None:
    StatusEvent.objects.bulk_create([
        StatusEvent(message_id=pk, status=status, reason_code=reason_code, reason=reason, created_at=now)
        for pk in ids], batch_size=5000)


def broadcast_pause(*, broadcast: Broadcast) -> Broadcast:
    """The fan-out stops, and the broadcast's messages not yet being sent are held: moved to
    `scheduled` with no due time (no sweeper picks those up) until resume."""
    now = clock.now()
    with transaction.atomic():
        broadcast = _locked(broadcast)
        if broadcast.status != Status_.SENDING:
            raise Conflict(f"Broadcast {broadcast.pk} is {broadcast.status}; "
                           "only a sending one can be paused.")
        broadcast.status = Status_.PAUSED
        broadcast.save(update_fields=["status"])
        held = _update_messages(
            broadcast, "status = %s, next_attempt_at = NULL, updated_at = %s", "status IN (%s, %s)",
            [Status.SCHEDULED, now, Status.QUEUED, Status.SCHEDULED])
        _timeline(held, Status.SCHEDULED, "broadcast_paused", "Held: the broadcast is paused.", now)
    return broadcast


def broadcast_resume(*, broadcast: Broadcast) -> Broadcast:
    """Held messages go again (queued now, or scheduled for their own send_at); the fan-out goes on."""
    from apps.broadcasts.tasks import fan_out

    now = clock.now()
    with transaction.atomic():
        broadcast = _locked(broadcast)
        if broadcast.status != Status_.PAUSED:
            raise Conflict(f"Broadcast {broadcast.pk} is {broadcast.status}; "
                           "only a paused one can be resumed.")
        broadcast.status = Status_.SENDING
        broadcast.save(update_fields=["status"])
        held = "status = %s AND next_attempt_at IS NULL"
        queued = _update_messages(
            broadcast, "status = %s, updated_at = %s", held + " AND (send_at IS NULL OR send_at <= %s)",
            [Status.QUEUED, now, Status.SCHEDULED, now])
        _update_messages(broadcast, "next_attempt_at = send_at, updated_at = %s", held,
                         [now, Status.SCHEDULED])
        _timeline(queued, Status.QUEUED, "broadcast_resumed", "The broadcast was resumed.", now)
        enqueue_sends(queued)
        if broadcast.fanned_out_at is None:
            enqueue_on_commit(fan_out, broadcast.pk)
    return broadcast


def broadcast_cancel(*, broadcast: Broadcast) -> Broadcast:
    """The fan-out stops; every message of the broadcast not yet being sent is cancelled (one
    statement, a timeline entry each). Messages already sending finish."""
    now = clock.now()
    with transaction.atomic():
        broadcast = _locked(broadcast)
        if broadcast.status in (Status_.CANCELLED, Status_.COMPLETED):
            raise Conflict(f"Broadcast {broadcast.pk} is {broadcast.status} already.")
        broadcast.status, broadcast.finished_at = Status_.CANCELLED, now
        broadcast.save(update_fields=["status", "finished_at"])
        cancelled = _update_messages(
            broadcast, "status = %s, next_attempt_at = NULL, updated_at = %s", "status IN (%s, %s)",
            [Status.CANCELLED, now, Status.QUEUED, Status.SCHEDULED])
        _timeline(cancelled, Status.CANCELLED, "cancelled", "broadcast cancelled", now)
    return broadcast


# --- The tick job ---------------------------------------------------------------------------

def broadcasts_tick() -> dict[str, int]:
    """Tick job: start scheduled broadcasts that are due; re-enqueue the fan-out of a sending
    broadcast that has not moved for SIGNALBOX_BROADCAST_STALL_SECONDS (its worker died); mark
    completed those whose fan-out is done and whose messages have all left the queue."""
    from apps.broadcasts.tasks import fan_out

    now = clock.now()
    started = resumed = completed = 0
    with transaction.atomic():
        due = Broadcast.objects.select_for_update(skip_locked=True).filter(status=Status_.SCHEDULED)
        for broadcast in due.filter(send_at__lte=now + LOCAL_TIME_LEAD):
            if _due_at(broadcast) <= now:
                _begin(broadcast)
                started += 1
    stalled = now - timedelta(seconds=settings.SIGNALBOX_BROADCAST_STALL_SECONDS)
    for pk in Broadcast.objects.filter(status=Status_.SENDING, fanned_out_at__isnull=True,
                                       updated_at__lt=stalled).values_list("pk", flat=True):
        enqueue_on_commit(fan_out, pk)
        resumed += 1
    for broadcast in Broadcast.objects.filter(status=Status_.SENDING, fanned_out_at__isnull=False):
        pending = Message.objects.filter(broadcast=broadcast,
                                         status__in=[Status.SCHEDULED, Status.QUEUED, Status.SENDING])
        if not pending.exists():
            completed += Broadcast.objects.filter(pk=broadcast.pk, status=Status_.SENDING).update(
                status=Status_.COMPLETED, finished_at=now, updated_at=now)
    if resumed:
        logger.warning("re-enqueued the fan-out of %d stalled broadcasts", resumed)
    return {"started": started, "fan_out_resumed": resumed, "completed": completed}
