"""Recording accepted events and handing committed ones to their consumers."""

import json
import logging
import os
import threading
import time
import uuid
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
from django.conf import settings
from django.core.cache import cache
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils.module_loading import import_string

from apps.core import clock
from apps.core.cache import cache_add
from apps.core.postgresql import prepared
from apps.core.queue import enqueue_now, enqueue_on_commit
from apps.events.models import Event
from apps.recipients.services import recipients_resolve_many

logger = logging.getLogger(__name__)

# A client clock this far ahead is wrong, not early: its timestamp is replaced by received_at.
FUTURE_TOLERANCE = timedelta(minutes=5)
DRAIN_BATCH = 500
DRAIN_FLAG = "signalbox:events-drain-scheduled"
# A drain lost before it cleared the flag (or a process stopped between setting it and publishing
# the drain) blocks new ones for at most this long (and the tick's events_requeue_unprocessed
# forces one after SIGNALBOX_EVENT_REQUEUE_AFTER_SECONDS anyway). A drain waiting longer than this
# in a busy queue only means a second one is published.
DRAIN_FLAG_SECONDS = 5


@dataclass
class EventDraft:
    """An event checked, ready to be stored. Its recipient: `recipient_id`, or (left None) the
    tenant's recipient with `external_id`, found or created when the event is stored."""

    name: str
    recipient_id: int | None
    external_id: str = ""
    kind: str = Event.Kind.TRACK
    properties: dict = field(default_factory=dict)
    context: dict = field(default_factory=dict)
    message_id: str = ""
    cancellation_key: str = ""
    timestamp: datetime | None = None
    sent_at: datetime | None = None


def event_time(*, timestamp: datetime | None, sent_at: datetime | None,
               received_at: datetime) -> tuple[datetime, bool]:
    """When the event happened, corrected for the client's clock skew; and whether it was clamped.

    Segment's rule: timestamp = receivedAt − (sentAt − timestamp), when the client sent sentAt.
    https://segment.com/docs/connections/spec/common/#timestamp-overview
    """
    if timestamp is None:
        return received_at, False
    occurred = received_at - (sent_at - timestamp) if sent_at else timestamp
    if occurred > received_at + FUTURE_TOLERANCE:
        return received_at, True
    return occurred, False


def events_record(*, tenant, source: str, drafts: list[EventDraft]) -> list[int]:
    """Store events (one INSERT for the lot) and schedule their processing after commit.

    Native events get fresh message ids and their new ids are returned. Segment events
    de-duplicate on (tenant, messageId): a replay is skipped by ON CONFLICT DO NOTHING, and
    nothing is returned (the Segment API answers without ids). Drafts that name their recipient
    by external id are resolved by the INSERT itself (_insert).
    """
    received_at = clock.now()
    rows = []
    for draft in drafts:
        occurred_at, clamped = event_time(
            timestamp=draft.timestamp, sent_at=draft.sent_at, received_at=received_at
        )
        rows.append({"r": draft.recipient_id, "x": draft.external_id or None, "n": draft.name,
                     "k": draft.kind, "p": draft.properties, "c": draft.context,
                     "m": draft.message_id or uuid.uuid4().hex, "ck": draft.cancellation_key,
                     "o": occurred_at, "tc": clamped})
    # On PostgreSQL the lot is one statement, atomic on its own: outside a caller's transaction it
    # commits by itself, without the two round trips of BEGIN and COMMIT.
    with nullcontext() if connection.vendor == "postgresql" else transaction.atomic():
        ids = _insert(tenant, source, received_at, rows)
    transaction.on_commit(events_drain_wake_up_soon, robust=True)  # at once when that was the commit
    return ids


# PostgreSQL: one statement whose only row parameter is a JSON array of the events, so psycopg
# quotes one string (in C) instead of each value or array element (in Python, with Django's
# client-side binding): about half a Segment batch's CPU (docs/performance.md). A row without a
# recipient id (`r`) names its recipient by external id (`x`), which the statement looks up
# itself, row by row in the unique (tenant, external_id) index (a join's plan would depend on
# statistics), taking the recipient it was merged into if it was: a request whose recipients
# exist costs this statement alone. If one does not exist yet, nothing is inserted and the
# statement answers the missing external ids (with a NULL id). Other databases use bulk_create.
_JSON_INSERT = """
    WITH u AS MATERIALIZED (
        SELECT u.*, COALESCE(u.r, (
            SELECT COALESCE(rc.merged_into_id, rc.id) FROM recipients_recipient rc
            WHERE rc.tenant_id = %(tenant)s AND rc.external_id = u.x)) AS rid
        FROM jsonb_to_recordset(%(rows)s::jsonb) AS u(r bigint, x text, n text, k text, p jsonb,
            c jsonb, m text, ck text, o timestamptz, tc boolean)
    ), inserted AS (
        INSERT INTO events_event (tenant_id, recipient_id, name, kind, properties, context, source,
            message_id, cancellation_key, occurred_at, received_at, timestamp_clamped, processed_at,
            created_at, updated_at)
        SELECT %(tenant)s, rid, n, k, p, c, %(source)s, m, ck, o, %(now)s, tc, NULL, %(now)s, %(now)s
        FROM u WHERE NOT EXISTS (SELECT FROM u WHERE rid IS NULL AND x IS NOT NULL)
        {conflict}
        RETURNING message_id, id
    )
    SELECT x, NULL FROM u WHERE rid IS NULL AND x IS NOT NULL UNION ALL SELECT message_id, id FROM inserted
"""


def _insert(tenant, source: str, now: datetime, rows: list[dict]) -> list[int]:
    """INSERT the rows; Segment events skip a (tenant, message_id) already stored. The native
    API's new ids, in the order of `rows` (their message ids are fresh, so they never conflict).
    A recipient named by external id that does not exist yet is created first: then the rows'
    recipients are all resolved in Python and the INSERT runs again, so a request is stored
    whole or not at all."""
    if connection.vendor != "postgresql":
        _resolve_external_ids(tenant, rows)
        events = [Event(tenant_id=tenant.pk, recipient_id=row["r"], name=row["n"], kind=row["k"],
                        properties=row["p"], context=row["c"], source=source, message_id=row["m"],
                        cancellation_key=row["ck"], occurred_at=row["o"], received_at=now,
                        timestamp_clamped=row["tc"], created_at=now, updated_at=now) for row in rows]
        if source == Event.Source.API:
            return [event.pk for event in Event.objects.bulk_create(events)]
        Event.objects.bulk_create(events, ignore_conflicts=True)
        return []
    if source == Event.Source.API and len(rows) == 1:
        return [_insert_one(tenant, now, rows[0])]
    sql = _JSON_INSERT.format(conflict="" if source == Event.Source.API
                              else "ON CONFLICT (tenant_id, message_id) DO NOTHING")
    params = {"tenant": tenant.pk, "source": source, "now": now}
    with connection.cursor() as cursor:
        cursor.execute(sql, {**params, "rows": _json(rows)})
        found = cursor.fetchall()
        if any(pk is None for _, pk in found):
            _resolve_external_ids(tenant, rows)
            cursor.execute(sql, {**params, "rows": _json(rows)})
            found = cursor.fetchall()
    ids = dict(found)
    return [ids[row["m"]] for row in rows] if source == Event.Source.API else []


# PostgreSQL, one event of the native API (a fresh message id: no conflict): a plain INSERT …
# SELECT, the recipient found by external id as above; PostgreSQL plans and runs it in half the
# time of the JSON statement (0.13 against 0.28 ms a request with pgbench). No row: the recipient
# does not exist yet. Prepared on a kept connection (prepared.statement; every value cast to its
# type for PREPARE): PostgreSQL's CPU per request 0.25 → 0.15 ms (bench/ingest_cpu.py single).
_ONE_INSERT = """
    INSERT INTO events_event (tenant_id, recipient_id, name, kind, properties, context, source,
        message_id, cancellation_key, occurred_at, received_at, timestamp_clamped, processed_at,
        created_at, updated_at)
    SELECT %(tenant)s::bigint, {recipient}, %(n)s::text, %(k)s::text, %(p)s::jsonb, %(c)s::jsonb, 'api',
        %(m)s::text, %(ck)s::text, %(o)s::timestamptz, %(now)s::timestamptz, %(tc)s::boolean, NULL,
        %(now)s::timestamptz, %(now)s::timestamptz
    {recipients}
    RETURNING id
"""
_BY_ID = _ONE_INSERT.format(recipient="%(r)s::bigint", recipients="")
_BY_EXTERNAL_ID = _ONE_INSERT.format(
    recipient="COALESCE(rc.merged_into_id, rc.id)",
    recipients="FROM recipients_recipient rc "
               "WHERE rc.tenant_id = %(tenant)s::bigint AND rc.external_id = %(x)s::text")


def _insert_one(tenant, now: datetime, row: dict) -> int:
    """_insert for one event of the native API on PostgreSQL: its new id."""
    params = {**row, "tenant": tenant.pk, "now": now, "p": _json(row["p"]), "c": _json(row["c"])}
    by_external_id = row["r"] is None and row["x"]
    with connection.cursor() as cursor:
        cursor.execute(*prepared.statement(cursor, _BY_EXTERNAL_ID if by_external_id else _BY_ID, params))
        found = cursor.fetchone()
        if found is None and by_external_id:
            _resolve_external_ids(tenant, [row])
            cursor.execute(*prepared.statement(cursor, _BY_ID, {**params, "r": row["r"]}))
            found = cursor.fetchone()
    return found[0]


def _resolve_external_ids(tenant, rows: list[dict]) -> None:
    """Fill in the recipient id of each row that names its recipient by external id, creating the
    recipients that do not exist (segments are re-evaluated by the events' consumers)."""
    named = [row for row in rows if row["r"] is None and row["x"]]
    ids = recipients_resolve_many(tenant=tenant, external_ids={row["x"] for row in named}, notify=False)
    for row in named:
        row["r"] = ids[row["x"]]


def _json(rows: list[dict]) -> str:
    """The rows as JSON: orjson (a tenth of the json module's time for a batch, which called back
    into Python for each timestamp), or the json module for what orjson refuses (integers beyond
    64 bits, which JSON bodies may carry)."""
    try:
        return orjson.dumps(rows).decode()
    except TypeError:
        return json.dumps(rows, default=datetime.isoformat)


def events_drain_wake_up(*, force: bool = False) -> None:
    """Make sure a drain task will run. One cache SET NX per call: while the flag is set, a
    drain is scheduled or running, and it clears the flag before its final scan, so an event
    committed before this call is always seen (events_drain)."""
    from apps.events.tasks import drain_events

    if _drain_wanted() or force:
        enqueue_on_commit(drain_events)


def _drain_wanted() -> bool:
    """Set the drain flag: whether it was not set (no drain scheduled). None from the cache: it
    is down; publish anyway (if the broker is down too, the tick catches up)."""
    return cache_add(DRAIN_FLAG, 1, DRAIN_FLAG_SECONDS) is not False


class _DrainWakeUp:
    """events_drain_wake_up after each commit of events, coalesced per process under load: a
    commit more than SIGNALBOX_EVENT_WAKE_UP_SECONDS after this process's last wake-up calls it at
    once (so a lone event is never left to a thread); one sooner only marks that it needs one,
    and a daemon thread of the process (started on first use, again in a forked child) calls it
    for all those marked, that long after the last. A wake-up still follows every commit, within
    that delay, for a fraction of the Redis round trips under load (the SET NX was 13 % of a
    single event's CPU: bench/ingest_cpu.py). Marks not yet served when the process is stopped
    are served by the next drain of any process (a drain takes every unprocessed event), or by
    the tick's events_requeue_unprocessed. 0: always at once."""

    def __init__(self):
        self._due, self._lock, self._pid, self._last = threading.Event(), threading.Lock(), 0, 0.0

    def __call__(self) -> None:
        interval, now = settings.SIGNALBOX_EVENT_WAKE_UP_SECONDS, time.monotonic()
        if now - self._last >= interval:
            self._last = now
            events_drain_wake_up()
            return
        if self._pid != os.getpid():
            self._start()
        self._due.set()

    def _start(self) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._due = threading.Event()  # not one a parent's thread may have held at the fork
                threading.Thread(target=self._run, args=(self._due,), name="events-drain-wake-up",
                                 daemon=True).start()
                self._pid = os.getpid()

    def _run(self, due: threading.Event) -> None:
        from apps.events.tasks import drain_events

        while True:
            due.wait()
            time.sleep(max(0.0, self._last + settings.SIGNALBOX_EVENT_WAKE_UP_SECONDS - time.monotonic()))
            due.clear()  # before the wake-up: a commit marked after this gets the next one
            self._last = time.monotonic()
            try:
                if _drain_wanted():  # as events_drain_wake_up, with no transaction (nor connection) here
                    enqueue_now(drain_events)
            except Exception:
                logger.exception("scheduling an events drain failed; the tick will catch up")


events_drain_wake_up_soon = _DrainWakeUp()


def events_drain() -> int:
    """Process committed events, oldest first, until none is left. Returns how many."""
    total = 0
    while True:
        cache.delete(DRAIN_FLAG)  # before the scan: see events_drain_wake_up
        processed = events_process()
        if not processed:
            return total
        total += processed


def events_process(*, event_ids: list[int] | None = None, limit: int = DRAIN_BATCH) -> int:
    """Hand committed, unprocessed events (the oldest `limit`, or those of `event_ids`) to each
    consumer in SIGNALBOX_EVENT_CONSUMERS (the journey engine plugs in there), then mark them
    processed, in one transaction. Rows are claimed with SKIP LOCKED (PostgreSQL), so workers
    draining at once take different events. Returns how many were processed."""
    consumers = [import_string(path) for path in settings.SIGNALBOX_EVENT_CONSUMERS]
    with transaction.atomic():
        rows = Event.objects.select_for_update(skip_locked=True).filter(processed_at__isnull=True)
        if event_ids is not None:
            rows = rows.filter(id__in=event_ids)
        events = list(rows.order_by("received_at", "id")[:limit])
        if not events:
            return 0
        try:
            with transaction.atomic():  # a savepoint: a failed batch leaves nothing behind
                for consumer in consumers:
                    consumer(events=events)
        except (OperationalError, InterfaceError):
            raise  # the database, not the event: the whole batch is retried
        except Exception:
            logger.exception("event consumers failed on a batch of %d; taking them one by one", len(events))
            for event in events:
                _consume_one(consumers, event)
        Event.objects.filter(id__in=[e.pk for e in events]).update(processed_at=clock.now())
    return len(events)


def _consume_one(consumers, event: Event) -> None:
    """One event through the consumers; if one fails, the event is marked with the error and
    skipped, so a poison event never blocks the events behind it."""
    try:
        with transaction.atomic():
            for consumer in consumers:
                consumer(events=[event])
    except (OperationalError, InterfaceError):
        raise
    except Exception as exc:
        logger.exception("event consumers failed on event %s; skipped", event.pk)
        Event.objects.filter(pk=event.pk).update(process_error=f"{type(exc).__name__}: {exc}"[:2000])


def events_requeue_unprocessed() -> int:
    """Tick job: if events have waited too long (a drain task lost with the broker, a dead
    worker), schedule a drain regardless of the flag. Returns how many were waiting."""
    cutoff = clock.now() - timedelta(seconds=settings.SIGNALBOX_EVENT_REQUEUE_AFTER_SECONDS)
    waiting = Event.objects.filter(processed_at__isnull=True, received_at__lt=cutoff).count()
    if waiting:
        logger.info("%d events waited over %ss; scheduling a drain", waiting,
                    settings.SIGNALBOX_EVENT_REQUEUE_AFTER_SECONDS)
        with transaction.atomic():
            events_drain_wake_up(force=True)
    return waiting
