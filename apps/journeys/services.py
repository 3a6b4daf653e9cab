"""Journey writes: publishing and status changes, the event consumer, the scheduler's tick jobs,
cancellation by key. The transitions themselves are engine.py's; here they are executed.

Newer steps (see engine.py's docstring): a trigger event whose digest key matches a run
collecting a digest of its journey joins that run (`_absorb`, before the re-entry rule, under
the consumer's recipient lock); throttle counts are path rows counted under the recipient lock;
webhook calls are made by `journeys_call_webhooks` (a task published when a run reaches the step,
and the tick job for retries and anything missed), outside any transaction;
profile updates go through apps/recipients/services.py's profile_validate/profile_apply.
"""

import json
import logging
import time as walltime
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Q

from apps.core import clock
from apps.core.errors import Conflict, InvalidInput, NotFound
from apps.core.queue import enqueue_on_commit
from apps.journeys import definition as definitions
from apps.journeys import engine, expressions
from apps.journeys.models import Journey, JourneyRun, JourneyRunStep, JourneyStep, JourneyVersion
from apps.messaging.models import Message, Priority

logger = logging.getLogger(__name__)

# A tick advances due runs for at most this long; the next tick (SKIP LOCKED) carries on.
DUE_BUDGET_SECONDS = 30
# Goals older than this are never looked for, whatever a journey's `goal.within` says.
GOAL_WINDOW_MAX = timedelta(days=90)
DEFAULT_GOAL_WINDOW = "7d"


# --- Publishing and status --------------------------------------------------------------------

def template_published(tenant, key: str) -> bool:
    from apps.content.services import template_get_published

    try:
        template_get_published(tenant, key)
    except NotFound:
        return False
    return True


def journey_definition_errors(*, journey: Journey, definition: dict | None = None) -> dict[str, list[str]]:
    from apps.segments.models import Segment

    return definitions.validate(
        journey.definition if definition is None else definition,
        template_published=lambda key: template_published(journey.tenant, key),
        segment_exists=lambda key: Segment.objects.filter(tenant=journey.tenant, key=key).exists())


def journey_publish(*, journey: Journey) -> JourneyVersion:
    """Snapshot the draft as version N+1. Runs already inside keep the version they entered with."""
    errors = journey_definition_errors(journey=journey)
    if errors:
        raise InvalidInput("The journey has errors; fix them before publishing.", fields=errors)
    with transaction.atomic():
        Journey.objects.select_for_update().filter(pk=journey.pk).first()
        number = (journey.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        journey.versions.filter(is_current=True).update(is_current=False)
        version = JourneyVersion.objects.create(
            tenant=journey.tenant, journey=journey, number=number, definition=journey.definition,
            trigger_event=definitions.trigger_key(journey.definition), is_current=True)
        JourneyStep.objects.bulk_create([
            JourneyStep(version=version, key=step["id"], type=step["type"], position=i)
            for i, step in enumerate(journey.definition["steps"])])
        journey.live_version = version
        journey.save(update_fields=["live_version"])
    return version


def journey_activate(*, journey: Journey) -> Journey:
    """Publish the draft if it changed since the live version, and start taking entries."""
    if journey.status == Journey.Status.ARCHIVED:
        raise Conflict("An archived journey cannot be activated.")
    if journey.live_version is None or journey.live_version.definition != journey.definition:
        journey_publish(journey=journey)
    journey.status = Journey.Status.ACTIVE
    journey.save(update_fields=["status"])
    return journey


def journey_pause(*, journey: Journey) -> Journey:
    """No new entries and no run advances until resumed; due runs catch up on resume."""
    if journey.status != Journey.Status.ACTIVE:
        raise Conflict(f"Only an active journey can be paused; this one is {journey.status}.")
    journey.status = Journey.Status.PAUSED
    journey.save(update_fields=["status"])
    return journey


def journey_resume(*, journey: Journey) -> Journey:
    if journey.status != Journey.Status.PAUSED:
        raise Conflict(f"Only a paused journey can be resumed; this one is {journey.status}.")
    journey.status = Journey.Status.ACTIVE
    journey.save(update_fields=["status"])
    return journey


def journey_archive(*, journey: Journey) -> int:
    """Stop the journey for good: its live runs are cancelled. Returns how many."""
    with transaction.atomic():
        journey.status = Journey.Status.ARCHIVED
        journey.save(update_fields=["status"])
        runs = list(JourneyRun.objects.select_for_update().filter(journey=journey, status__in=engine.LIVE))
        _end_runs(runs, engine.CANCELLED, "Journey archived")
    return len(runs)


# --- Versions, cached per process (they never change) -----------------------------------------

@dataclass
class _Version:
    definition: dict
    step_ids: dict[str, int]  # step key → JourneyStep pk
    goal_window: timedelta


_versions: dict[int, _Version] = {}


def journey_cache_clear() -> None:
    _versions.clear()


def _version(version_id: int) -> _Version:
    if version_id not in _versions:
        version = JourneyVersion.objects.get(pk=version_id)
        goal = version.definition.get("goal") or {}
        window = timedelta(seconds=definitions.parse_duration(goal.get("within") or DEFAULT_GOAL_WINDOW))
        _versions[version_id] = _Version(
            version.definition, dict(version.steps.values_list("key", "id")), min(window, GOAL_WINDOW_MAX))
    return _versions[version_id]


# --- Executing engine results ------------------------------------------------------------------

@dataclass
class _Batch:
    """What one transaction's runs produce, written together at the end (`flush`)."""

    now: datetime
    messages: list[Message] = field(default_factory=list)
    runs: dict[int, JourneyRun] = field(default_factory=dict)  # changed runs, by id
    new_path: dict[tuple[int, str], JourneyRunStep] = field(default_factory=dict)  # not yet inserted
    closed_path: list[tuple[int, int, str, str]] = field(default_factory=list)  # run, step, outcome, reason
    recipients: dict = field(default_factory=dict)
    zones: dict = field(default_factory=dict)
    categories: dict = field(default_factory=dict)  # (tenant id, template key) → its category
    stopped: set[int] = field(default_factory=set)  # runs ended from outside: their unsent messages go
    locked: set[int] = field(default_factory=set)  # recipients this transaction holds locked
    skip_locked: bool = False  # a recipient another transaction holds: leave its run for later

    def facts(self, run: JourneyRun) -> engine.Facts:
        from apps.content.services import recipient_profile

        recipient = self.recipients.get(run.recipient_id) or run.recipient
        if not recipient.timezone and run.tenant_id not in self.zones:
            self.zones[run.tenant_id] = run.tenant.effective_default_timezone()
        return engine.Facts(now=self.now, recipient=recipient_profile(recipient),
                            timezone=recipient.timezone or self.zones[run.tenant_id])

    def flush(self) -> None:
        from apps.journeys.tasks import call_webhooks
        from apps.messaging.services import message_create_many

        if any(run.wait_event.startswith(engine.WEBHOOK_PENDING) and run.due_at and run.due_at <= self.now
               for run in self.runs.values()):
            enqueue_on_commit(call_webhooks)
        _runs_update(list(self.runs.values()), self.now)
        _path_close(self.closed_path, self.now)
        _path_insert(list(self.new_path.values()))
        if self.messages:
            message_create_many(messages=self.messages)
        _messages_cancel(self.stopped)
        self.runs, self.new_path, self.closed_path, self.messages, self.stopped = {}, {}, [], [], set()


RUN_FIELDS = ["status", "current_step", "context", "due_at", "wait_event", "end_reason", "ended_at",
              "updated_at"]
# PostgreSQL: a batch of runs in one statement whose parameters are arrays (see events_record).
_RUNS_UPDATE = """
    UPDATE journeys_journeyrun AS r SET status = u.status, current_step = u.step, context = u.context::jsonb,
        due_at = u.due_at, wait_event = u.wait_event, end_reason = u.end_reason, ended_at = u.ended_at,
        updated_at = %(now)s
    FROM unnest(%(ids)s::bigint[], %(status)s::text[], %(step)s::text[], %(context)s::text[],
        %(due_at)s::timestamptz[], %(wait_event)s::text[], %(end_reason)s::text[],
        %(ended_at)s::timestamptz[])
        AS u(id, status, step, context, due_at, wait_event, end_reason, ended_at)
    WHERE r.id = u.id
"""
_PATH_CLOSE = """
    UPDATE journeys_journeyrunstep AS s SET left_at = %(now)s, outcome = u.outcome, reason = u.reason
    FROM unnest(%(runs)s::bigint[], %(steps)s::bigint[], %(outcomes)s::text[], %(reasons)s::text[])
        AS u(run, step, outcome, reason)
    WHERE s.run_id = u.run AND s.step_id = u.step AND s.left_at IS NULL
"""


def _runs_update(runs: list[JourneyRun], now: datetime) -> None:
    if not runs:
        return
    for run in runs:
        run.updated_at = now
    if connection.vendor != "postgresql":
        JourneyRun.objects.bulk_update(runs, RUN_FIELDS)
        return
    with connection.cursor() as cursor:
        cursor.execute(_RUNS_UPDATE, {
            "now": now, "ids": [r.pk for r in runs], "status": [r.status for r in runs],
            "step": [r.current_step for r in runs], "context": [json.dumps(r.context) for r in runs],
            "due_at": [r.due_at for r in runs], "wait_event": [r.wait_event for r in runs],
            "end_reason": [r.end_reason for r in runs], "ended_at": [r.ended_at for r in runs]})


_PATH_INSERT = """
    INSERT INTO journeys_journeyrunstep (run_id, step_id, entered_at, left_at, outcome, reason)
    SELECT * FROM unnest(%(runs)s::bigint[], %(steps)s::bigint[], %(entered)s::timestamptz[],
        %(left)s::timestamptz[], %(outcomes)s::text[], %(reasons)s::text[])
"""


def _path_insert(rows: list[JourneyRunStep]) -> None:
    if connection.vendor != "postgresql" or not rows:
        JourneyRunStep.objects.bulk_create(rows)
        return
    with connection.cursor() as cursor:
        cursor.execute(_PATH_INSERT, {
            "runs": [r.run_id for r in rows], "steps": [r.step_id for r in rows],
            "entered": [r.entered_at for r in rows], "left": [r.left_at for r in rows],
            "outcomes": [r.outcome for r in rows], "reasons": [r.reason for r in rows]})


def _path_close(closed: list[tuple[int, int, str, str]], now: datetime) -> None:
    if not closed:
        return
    if connection.vendor != "postgresql":
        for run_id, step_id, outcome, reason in closed:
            JourneyRunStep.objects.filter(run_id=run_id, step_id=step_id, left_at__isnull=True).update(
                left_at=now, outcome=outcome, reason=reason)
        return
    with connection.cursor() as cursor:
        runs, steps, outcomes, reasons = (list(column) for column in zip(*closed, strict=True))
        cursor.execute(_PATH_CLOSE, {"now": now, "runs": runs, "steps": steps, "outcomes": outcomes,
                                     "reasons": reasons})


def _advance(run: JourneyRun, batch: _Batch, transition) -> engine.Result:
    """Call `transition(facts)`, loading the facts it asks for, then execute the result."""
    facts = batch.facts(run)
    result = transition(facts)
    if result.needs:
        if not _load_facts(run, facts, result.needs, batch):
            return engine.Result(_state(run), changed=False)
        result = transition(facts)
    if any(isinstance(e, engine.UpdateProfile) for e in result.effects) and not _recipient_lock(
            run.recipient_id, batch):
        return engine.Result(_state(run), changed=False)
    if result.changed:
        _apply(run, result, batch)
    return result


def _load_facts(run: JourneyRun, facts: engine.Facts, needs: set[str], batch: _Batch) -> bool:
    """Load what the engine asked for; False when the recipient's lock could not be had."""
    from apps.events.models import Event

    facts.history = dict(facts.history or {})
    for need in needs:
        if need.startswith("history:"):
            name = need.removeprefix("history:")
            last = (Event.objects.filter(tenant_id=run.tenant_id, recipient_id=run.recipient_id, name=name)
                    .order_by("-occurred_at").values_list("occurred_at", flat=True).first())
            facts.history[name] = last.isoformat() if last else None
    if "messages" in needs:
        facts.messages = {key: {"status": status, "id": pk} for pk, key, status in
                          Message.objects.filter(tenant_id=run.tenant_id, journey_run_id=run.pk)
                          .order_by("id").values_list("id", "journey_step__key", "status")}
    throttles = [need.split(":", 2)[1:] for need in needs if need.startswith("throttle:")]
    if throttles and not _recipient_lock(run.recipient_id, batch):
        return False
    facts.throttles = dict(facts.throttles or {})
    for step_key, key in throttles:
        facts.throttles[(step_key, key)] = _throttle_passes(run, step_key, key, batch)
    return True


def _recipient_lock(recipient_id: int, batch: _Batch) -> bool:
    """Throttle counts and profile updates are made under the recipient's lock (as the consumer
    takes it), so two transactions never both let a run pass. The tick, which holds runs locked,
    skips a recipient locked elsewhere (its run stays due) rather than wait: no lock cycle with
    a consumer, which locks recipients before runs."""
    from apps.recipients.models import Recipient

    if recipient_id not in batch.locked:
        rows = Recipient.objects.select_for_update(skip_locked=batch.skip_locked).filter(pk=recipient_id)
        if not list(rows.values_list("pk", flat=True)):
            return False
        batch.locked.add(recipient_id)
    return True


def _throttle_passes(run: JourneyRun, step_key: str, key: str, batch: _Batch) -> int:
    """Runs of the journey (any version) of this recipient that passed the throttle step with
    this key within its window: committed path rows, and this batch's not yet written."""
    step = next(s for s in _version(run.version_id).definition["steps"] if s["id"] == step_key)
    since = batch.now - timedelta(seconds=definitions.parse_duration(step["window"]))
    reason = engine.throttle_reason(key)
    written = JourneyRunStep.objects.filter(
        run__tenant_id=run.tenant_id, run__recipient_id=run.recipient_id, run__journey_id=run.journey_id,
        step__key=step_key, outcome="passed", reason=reason, entered_at__gt=since).count()
    pending = sum(1 for (_, key_), row in batch.new_path.items() if key_ == step_key
                  and row.run.recipient_id == run.recipient_id and row.run.journey_id == run.journey_id
                  and row.outcome == "passed" and row.reason == reason)
    return written + pending


def _apply(run: JourneyRun, result: engine.Result, batch: _Batch) -> None:
    state = result.state
    run.status, run.current_step, run.context = state.status, state.step, state.context
    run.due_at, run.wait_event, run.end_reason = state.due_at, state.wait_event, state.end_reason
    if state.status not in engine.LIVE and run.ended_at is None:
        run.ended_at = batch.now
    batch.runs[run.pk] = run
    steps = _version(run.version_id).step_ids
    for effect in result.effects:
        if isinstance(effect, engine.Entered):
            batch.new_path[(run.pk, effect.step)] = JourneyRunStep(
                run=run, step_id=steps[effect.step], entered_at=batch.now)
        elif isinstance(effect, engine.Left) and effect.step:
            row = batch.new_path.get((run.pk, effect.step))
            if row is not None and row.left_at is None:
                row.left_at, row.outcome, row.reason = batch.now, effect.outcome, effect.reason[:300]
            else:
                batch.closed_path.append((run.pk, steps[effect.step], effect.outcome, effect.reason[:300]))
        elif isinstance(effect, engine.Send):
            batch.messages.append(_message(run, effect, steps[effect.step], batch))
        elif isinstance(effect, engine.UpdateProfile):
            _profile_update(run, effect, batch)


def _profile_update(run: JourneyRun, update: engine.UpdateProfile, batch: _Batch) -> None:
    """As an API profile update: attributes merge, None removes one; once committed, segments
    re-evaluate the recipient (SIGNALBOX_PROFILE_CONSUMERS)."""
    from apps.recipients.services import profile_apply, profile_validate, profiles_changed

    recipient = batch.recipients.get(run.recipient_id) or run.recipient
    if profile_apply(recipient, profile_validate({"attributes": update.attributes})):
        recipient.updated_at = batch.now
        recipient.save(update_fields=["attributes", "updated_at"])
        transaction.on_commit(lambda: profiles_changed(tenant_id=run.tenant_id, recipient_ids=[recipient.pk]))
    batch.recipients[run.recipient_id] = recipient


def _template_category(run: JourneyRun, key: str, batch: _Batch) -> str:
    from apps.content.services import template_get_published

    if (run.tenant_id, key) not in batch.categories:
        try:
            category = template_get_published(run.tenant, key).template.category or "general"
        except NotFound:
            category = "general"  # the pipeline fails the send and records why
        batch.categories[(run.tenant_id, key)] = category
    return batch.categories[(run.tenant_id, key)]


def _message(run: JourneyRun, send: engine.Send, step_pk: int, batch: _Batch) -> Message:
    category = send.category or _template_category(run, send.template, batch)
    trigger = run.context.get("trigger", {})
    return Message(
        tenant_id=run.tenant_id, recipient_id=run.recipient_id, channels=list(send.channels),
        category=category, priority=send.priority or Priority.NORMAL, source=Message.Source.JOURNEY,
        event_id=trigger.get("id"), journey_run=run, journey_step_id=step_pk, template_key=send.template,
        data=expressions.template_data(run.context),
        dedupe_key=f"run:{run.pk}:{send.dedupe_key_suffix}")


def _end_runs(runs: list[JourneyRun], status: str, reason: str) -> None:
    batch = _Batch(now=clock.now())
    for run in runs:
        _advance(run, batch, lambda facts, run=run: engine.end(_state(run), status, reason))
    batch.stopped |= {run.pk for run in runs}
    batch.flush()


def _messages_cancel(run_ids: set[int]) -> None:
    """A run stopped by an exit event, its key or an archive sends nothing more: its messages not
    yet sending are cancelled (a conditional update each: one a worker claims first is let go)."""
    from apps.messaging.models import Status
    from apps.messaging.services import message_transition

    if not run_ids:
        return
    for message in Message.objects.filter(journey_run_id__in=run_ids, status__in=[Status.SCHEDULED,
                                                                                   Status.QUEUED]):
        message_transition(message=message, to=Status.CANCELLED, reason_code="journey_stopped",
                           reason="Its journey run was stopped before it was sent")


def _state(run: JourneyRun) -> engine.RunState:
    return engine.RunState(run.current_step, run.status, run.context, run.due_at, run.wait_event,
                           run.end_reason)


# --- Scheduler -----------------------------------------------------------------------------------

def journeys_advance_due(*, batch_size: int | None = None, budget_seconds: float = DUE_BUDGET_SECONDS) -> int:
    """Tick job: advance every run whose due time has come (delays ending, waits timing out), in
    batches claimed with SKIP LOCKED, one transaction each: a worker killed mid-batch rolls the
    batch back and the next tick does it again; the dedupe key stops any second send."""
    batch_size = batch_size or settings.SIGNALBOX_JOURNEY_DUE_BATCH
    started, total = walltime.monotonic(), 0
    while walltime.monotonic() - started < budget_seconds:
        advanced = _advance_due_batch(batch_size)
        total += advanced
        if advanced < batch_size:
            break
    return total


def _advance_due_batch(batch_size: int) -> int:
    now = clock.now()
    with transaction.atomic():
        runs = list(JourneyRun.objects.select_for_update(skip_locked=True, of=("self",))
                    .filter(due_at__lte=now, journey__status=Journey.Status.ACTIVE)
                    .exclude(wait_event__startswith=engine.WEBHOOK_PENDING)
                    .select_related("tenant", "recipient").order_by("due_at")[:batch_size])
        batch = _Batch(now=now, skip_locked=True)
        for run in runs:
            definition = _version(run.version_id).definition
            _advance(run, batch, lambda facts, run=run, d=definition: engine.on_due(d, _state(run), facts))
        batch.flush()
    return len(runs)


# --- Events --------------------------------------------------------------------------------------

def journeys_consume(*, events: list) -> None:
    """SIGNALBOX_EVENT_CONSUMERS entry: each event, in order, may end runs (exit events), move
    waiting runs on, count a goal, and start runs of the journeys it triggers. Everything is
    found by index: current versions by (tenant, trigger event), runs by (tenant, recipient)."""
    events = [e for e in events if e.recipient_id]
    if not events:
        return
    now = clock.now()
    triggers = defaultdict(list)
    for version in JourneyVersion.objects.filter(
            is_current=True, journey__status=Journey.Status.ACTIVE,
            tenant_id__in={e.tenant_id for e in events}, trigger_event__in={e.name for e in events},
    ).select_related("journey"):
        triggers[(version.tenant_id, version.trigger_event)].append(version)
    from apps.recipients.models import Recipient

    # Those who may enter a journey are locked (in id order: no deadlock between two drains), so
    # that two workers never both decide a recipient may enter a "once" journey.
    entering = sorted({e.recipient_id for e in events if (e.tenant_id, e.name) in triggers})
    recipients = {r.pk: r for r in Recipient.objects.select_for_update().select_related("tenant")
                  .filter(id__in=entering).order_by("id")}
    recipients |= Recipient.objects.select_related("tenant").in_bulk(
        {e.recipient_id for e in events} - recipients.keys())
    runs = runs_for_events(events=events, now=now)
    batch = _Batch(now=now, recipients=recipients, locked=set(entering))
    for event in events:
        data = engine.event_data(event_id=event.pk, name=event.name, properties=event.properties,
                                 occurred_at=event.occurred_at)
        recipient_runs = runs[(event.tenant_id, event.recipient_id)]
        for run in recipient_runs:
            _event_reaches_run(run, event, data, batch)
        for version in triggers.get((event.tenant_id, event.name), []):
            if _absorb(version, data, recipient_runs, batch):
                continue
            run = _enter(version, event, data, recipients[event.recipient_id], recipient_runs, batch)
            if run is not None:
                recipient_runs.append(run)
    batch.flush()


def runs_for_events(*, events: list, now: datetime) -> dict[tuple[int, int], list[JourneyRun]]:
    """(tenant id, recipient id) → the runs its events may reach: live ones (waits, exits) and
    recent unconverted ones (goals), locked. One query on the (tenant, recipient) index."""
    runs = defaultdict(list)
    for run in (JourneyRun.objects.select_for_update(of=("self",)).select_related("tenant", "journey")
                .filter(tenant_id__in={e.tenant_id for e in events},
                        recipient_id__in={e.recipient_id for e in events})
                .filter(Q(status__in=engine.LIVE) | Q(converted_at__isnull=True,
                                                         entered_at__gte=now - GOAL_WINDOW_MAX))
                .order_by("id")):
        runs[(run.tenant_id, run.recipient_id)].append(run)
    return runs


def _event_reaches_run(run: JourneyRun, event, data: dict, batch: _Batch) -> None:
    definition = _version(run.version_id).definition
    if run.status in engine.LIVE:
        # A paused journey's runs hold still, but its exit events still end them.
        waits = run.journey.status != Journey.Status.PAUSED
        result = _advance(run, batch, lambda facts: engine.on_event(definition, _state(run), data, facts,
                                                                    waits=waits))
        if result.stopped:
            batch.stopped.add(run.pk)
    goal = definition.get("goal") or {}
    if (goal.get("event") == event.name and run.converted_at is None and event.occurred_at >= run.entered_at
            and run.entered_at >= batch.now - _version(run.version_id).goal_window):
        run.converted_at = batch.now
        run.save(update_fields=["converted_at"])


def _absorb(version: JourneyVersion, data: dict, recipient_runs: list, batch: _Batch) -> bool:
    """A trigger of a journey whose run collects a digest with the same key joins that run."""
    for run in recipient_runs:
        if run.journey_id != version.journey_id or run.status != engine.ACTIVE or "batch" not in run.context:
            continue
        definition = _version(run.version_id).definition
        facts = batch.facts(run)
        key = engine.digest_key(definition, _state(run), data, facts)
        if key is None or key != run.context["batch"]["key"]:
            continue
        if not engine.trigger_matches(version.definition, data, facts):
            return False
        _advance(run, batch, lambda facts, run=run, d=definition: engine.absorb(d, _state(run), data, facts))
        return True
    return False


def _enter(version: JourneyVersion, event, data: dict, recipient, recipient_runs: list, batch: _Batch
           ) -> JourneyRun | None:
    definition = version.definition
    previous = [r for r in recipient_runs if r.journey_id == version.journey_id]
    if not _may_enter(definition.get("reentry") or {"rule": "once"}, previous, version.journey_id,
                      recipient, batch.now):
        return None
    run = JourneyRun(tenant_id=version.tenant_id, journey_id=version.journey_id, version=version,
                     recipient=recipient, entered_at=batch.now, cancellation_key=event.cancellation_key)
    run.tenant = recipient.tenant
    facts = batch.facts(run)
    if not engine.trigger_matches(definition, data, facts):
        return None
    run.save()
    _advance(run, batch, lambda facts: engine.start(definition, data, facts))
    return run


def _may_enter(reentry: dict, previous: list[JourneyRun], journey_id: int, recipient, now) -> bool:
    rule = reentry.get("rule", "once")
    if rule == "every_time":
        return True
    if rule == "one_at_a_time":
        return not any(r.status in engine.LIVE for r in previous)
    # `previous` holds only live or recent runs; "once" and a cool-down must see them all.
    older = JourneyRun.objects.filter(tenant_id=recipient.tenant_id, recipient_id=recipient.pk,
                                      journey_id=journey_id)
    if rule == "once":
        return not previous and not older.exists()
    cutoff = now - timedelta(seconds=definitions.parse_duration(reentry["cooldown"]))
    recent = older.filter(entered_at__gt=cutoff).exists()
    return not recent and not any(r.entered_at > cutoff for r in previous)


# --- Segments ------------------------------------------------------------------------------------

def journeys_segment_changed(*, tenant_id: int, segment_key: str, joined: list[int], left: list[int]) -> None:
    """SIGNALBOX_SEGMENT_CONSUMERS entry: recipients joined or left a segment. The active journeys
    it triggers (`"trigger": {"segment": key}`; one indexed query, and nothing more when there is
    none) start runs for those who joined — same trigger conditions and re-entry rules as an
    event, the trigger being {"name": "segment:<key>", "properties": {"segment": key}} — and with
    `exit_on_leave` end the live runs of those who left."""
    versions = list(JourneyVersion.objects.filter(
        tenant_id=tenant_id, is_current=True, journey__status=Journey.Status.ACTIVE,
        trigger_event=f"{definitions.SEGMENT_TRIGGER}{segment_key}").select_related("journey"))
    if not versions:
        return
    from apps.recipients.models import Recipient

    now = clock.now()
    leaving = [v.journey_id for v in versions if v.definition["trigger"].get("exit_on_leave")]
    if left and leaving:
        runs = list(JourneyRun.objects.select_for_update(of=("self",)).select_related("tenant").filter(
            tenant_id=tenant_id, recipient_id__in=left, journey_id__in=leaving, status__in=engine.LIVE)
            .order_by("id"))
        _end_runs(runs, engine.EXITED, f"Left segment {segment_key}")
    if not joined:
        return
    recipients = {r.pk: r for r in Recipient.objects.select_for_update().select_related("tenant")
                  .filter(tenant_id=tenant_id, id__in=joined).order_by("id")}
    runs = defaultdict(list)
    for run in JourneyRun.objects.filter(tenant_id=tenant_id, recipient_id__in=joined,
                                         journey_id__in=[v.journey_id for v in versions]).filter(
            Q(status__in=engine.LIVE) | Q(entered_at__gte=now - GOAL_WINDOW_MAX)):
        runs[run.recipient_id].append(run)
    batch = _Batch(now=now, recipients=recipients)
    data = {**engine.event_data(event_id=None, name=f"{definitions.SEGMENT_TRIGGER}{segment_key}",
                                properties={"segment": segment_key}, occurred_at=now), "segment": segment_key}
    entry = _SegmentEntry()
    for rid in joined:
        if rid not in recipients:
            continue
        for version in versions:
            run = _enter(version, entry, data, recipients[rid], runs[rid], batch)
            if run is not None:
                runs[rid].append(run)
    batch.flush()


class _SegmentEntry:
    """What `_enter` reads of the event that starts a run, for an entry by segment."""

    cancellation_key = ""


# --- Cancellation ---------------------------------------------------------------------------------

def journey_runs_cancel(*, tenant, cancellation_key: str, recipient=None) -> int:
    """End the tenant's live runs entered with `cancellation_key` (of one recipient, if given)."""
    if not cancellation_key:
        raise InvalidInput.field("cancellation_key", "Give the cancellation key.")
    with transaction.atomic():
        runs = JourneyRun.objects.select_for_update(of=("self",)).select_related("tenant").filter(
            tenant=tenant, cancellation_key=cancellation_key, status__in=engine.LIVE)
        if recipient is not None:
            runs = runs.filter(recipient=recipient)
        runs = list(runs)
        _end_runs(runs, engine.CANCELLED, f"Cancelled by key {cancellation_key}")
    return len(runs)


# --- Webhook steps ------------------------------------------------------------------------------

# A claimed call is not claimed again for this long (the longest timeout, and some): a tick
# killed mid-call leaves the run to the tick after that (the call may then be made twice; the
# Idempotency-Key header lets the endpoint tell).
WEBHOOK_LEASE = timedelta(seconds=definitions.MAX_WEBHOOK_TIMEOUT + 30)
WEBHOOK_BATCH = 20


def journeys_call_webhooks(*, budget_seconds: float = DUE_BUDGET_SECONDS) -> int:
    """Tick job: make the webhook calls of runs parked at a webhook step and due (new ones, and
    retries after their back-off): claimed (a lease on due_at) in one short transaction, called
    with no transaction open, answered through engine.on_webhook in another."""
    started, total = walltime.monotonic(), 0
    while walltime.monotonic() - started < budget_seconds:
        claimed = _webhooks_claim()
        for run_id, pending in claimed:
            _webhook_call(run_id, pending)
        total += len(claimed)
        if len(claimed) < WEBHOOK_BATCH:
            break
    return total


def _webhooks_claim() -> list[tuple[int, dict]]:
    now = clock.now()
    with transaction.atomic():
        rows = list(JourneyRun.objects.select_for_update(skip_locked=True, of=("self",))
                    .filter(due_at__lte=now, status=engine.ACTIVE, journey__status=Journey.Status.ACTIVE,
                            wait_event__startswith=engine.WEBHOOK_PENDING)
                    .order_by("due_at").values_list("pk", "context")[:WEBHOOK_BATCH])
        JourneyRun.objects.filter(pk__in=[pk for pk, _ in rows]).update(due_at=now + WEBHOOK_LEASE)
    return [(pk, context.get("pending_webhook")) for pk, context in rows]


def _webhook_call(run_id: int, pending: dict) -> None:
    run = JourneyRun.objects.select_related("tenant", "recipient").get(pk=run_id)
    definition = _version(run.version_id).definition
    try:
        request = engine.webhook_request(definition, _state(run), _Batch(now=clock.now()).facts(run))
    except expressions.ExpressionError as error:
        answer = engine.WebhookAnswer(None, error=f"Liquid: {error}")
    else:
        visit = run.context.get("visits", {}).get(pending["step"], 1)
        request["headers"].setdefault("Idempotency-Key", f"run:{run.pk}:{pending['step']}:{visit}")
        answer = webhook_answer(request, attempts=pending["attempts"] + 1)
    with transaction.atomic():
        run = JourneyRun.objects.select_for_update(of=("self",)).select_related("tenant", "recipient").get(
            pk=run_id)
        if run.context.get("pending_webhook") != pending:  # ended, or answered by another tick
            return
        batch = _Batch(now=clock.now(), skip_locked=True)
        _advance(run, batch, lambda facts: engine.on_webhook(definition, _state(run), answer, facts))
        batch.flush()


def webhook_answer(request: dict, *, attempts: int) -> engine.WebhookAnswer:
    """Make the call through the one safe client and classify the answer as the webhook channel
    does: 2xx success; 408, 429, 5xx and transport failures retried with the messages' back-off
    (pipeline.retry_delay) up to SIGNALBOX_MESSAGE_MAX_ATTEMPTS calls; other answers final."""
    from apps.delivery.http import BlockedAddress, HttpError, safe_request
    from apps.delivery.providers.base import classify
    from apps.messaging.pipeline import retry_delay

    try:
        response = safe_request(request["method"], request["url"], body=request["body"],
                                headers=request["headers"], timeout=request["timeout"])
    except BlockedAddress as error:
        return engine.WebhookAnswer(None, error=str(error))
    except HttpError as error:
        return engine.WebhookAnswer(None, error=str(error), retry_in=retry_delay(attempts, None))
    text = response.body.decode(errors="replace")
    try:
        body = json.loads(text) if text.strip() else None
    except ValueError:
        body = text
    problem = classify(response.status, text[:500], response.headers.get("Retry-After"))
    if problem is None:
        return engine.WebhookAnswer(response.status, body)
    retry_in = None if problem.permanent else retry_delay(attempts, problem.retry_after)
    return engine.WebhookAnswer(response.status, body, error=f"HTTP {response.status}", retry_in=retry_in)
