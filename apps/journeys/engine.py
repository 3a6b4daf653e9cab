"""Pure journey transitions: (definition, run state, input, facts) → new state + effects.

No database, no Celery, no clock: the services gather the facts (now, the recipient's profile,
their event history, earlier messages' statuses), call these functions and execute the effects.
When a branch needs facts it was not given, the result says so in `needs` and changes nothing;
the service loads them and calls again, so facts are only loaded for runs that use them.
"""

import copy
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apps.journeys import conditions
from apps.journeys.definition import parse_duration, parse_time_of_day

ACTIVE, WAITING = "active", "waiting"
COMPLETED, EXITED, CANCELLED = "completed", "exited", "cancelled"
LIVE = (ACTIVE, WAITING)
# Validation refuses loops without a delay or wait; this bounds a run's advance regardless.
MAX_STEPS_PER_ADVANCE = 100


@dataclass
class RunState:
    step: str = ""
    status: str = ACTIVE
    context: dict = field(default_factory=dict)
    due_at: datetime | None = None
    wait_event: str = ""
    end_reason: str = ""


@dataclass
class Facts:
    now: datetime
    recipient: dict = field(default_factory=dict)  # profile: timezone, attributes…
    timezone: str = "UTC"  # the recipient's, else the tenant default
    history: dict[str, str | None] | None = None  # event name → last occurred (ISO), on demand
    messages: dict[str, dict] | None = None  # send step id → {"status": …}, on demand


@dataclass(frozen=True)
class Send:
    step: str
    template: str
    channels: tuple[str, ...]
    category: str
    priority: str
    dedupe_key_suffix: str  # "<step>" on the first visit, "<step>:<n>" on later ones (loops)


@dataclass(frozen=True)
class Entered:
    step: str


@dataclass(frozen=True)
class Left:
    step: str
    outcome: str  # passed, matched, timeout, path N, default, exited, cancelled, failed
    reason: str = ""


@dataclass
class Result:
    state: RunState
    effects: list = field(default_factory=list)
    needs: set[str] = field(default_factory=set)  # "history:<event>", "messages"
    changed: bool = True
    stopped: bool = False  # ended from outside (exit event, key, archive): send nothing more


def event_data(*, event_id, name: str, properties: dict, occurred_at: datetime) -> dict:
    return {"id": event_id, "name": name, "properties": properties, "occurred_at": occurred_at.isoformat()}


def start(definition: dict, event: dict, facts: Facts) -> Result:
    state = RunState(context={"trigger": event, "events": {}, "visits": {}})
    first = definition.get("start") or definition["steps"][0]["id"]
    return _run(definition, state, first, facts, [])


def trigger_matches(definition: dict, event: dict, facts: Facts) -> bool:
    data = {"trigger": event, "event": event, "recipient": facts.recipient, "history": facts.history or {}}
    return conditions.evaluate((definition.get("trigger") or {}).get("conditions"), data, facts.now)


def on_due(definition: dict, state: RunState, facts: Facts) -> Result:
    """The run's due time came: a delay ends, or a wait times out."""
    if state.status not in LIVE or state.due_at is None or state.due_at > facts.now:
        return Result(state, changed=False)
    state = _copy(state)
    step = _steps(definition)[state.step]
    if state.status == WAITING:
        effects = [Left(step["id"], "timeout", f"No {step['event']} within {step['timeout']}")]
        return _run(definition, state, step.get("on_timeout"), facts, effects)
    return _run(definition, state, step.get("next"), facts, [Left(step["id"], "passed")])


def on_event(definition: dict, state: RunState, event: dict, facts: Facts, *, waits: bool = True) -> Result:
    """An event of the run's recipient: an exit event ends the run; the awaited one moves it on
    (unless `waits` is False: a paused journey)."""
    if state.status not in LIVE:
        return Result(state, changed=False)
    data = _data(state, facts, event)
    for exit_event in definition.get("exit_events") or []:
        if exit_event["event"] == event["name"] and conditions.evaluate(
                exit_event.get("conditions"), data, facts.now):
            return end(state, EXITED, f"Exit event {event['name']}")
    if not waits or state.status != WAITING or state.wait_event != event["name"]:
        return Result(state, changed=False)
    step = _steps(definition)[state.step]
    if not conditions.evaluate(step.get("conditions"), data, facts.now):
        return Result(state, changed=False)
    state = _copy(state)
    state.context["events"][step["id"]] = event
    effects = [Left(step["id"], "matched", f"event #{event['id']}")]
    return _run(definition, state, step.get("on_match"), facts, effects)


def end(state: RunState, status: str, reason: str) -> Result:
    """Stop the run where it is (exit event, cancellation key, archive)."""
    state = _copy(state)
    outcome = "exited" if status == EXITED else status
    state.status, state.due_at, state.wait_event, state.end_reason = status, None, "", reason
    return Result(state, [Left(state.step, outcome, reason)], stopped=True)


def _run(definition: dict, state: RunState, step_id: str | None, facts: Facts, effects: list) -> Result:
    """Walk from `step_id` until a step holds the run (delay, wait) or it ends."""
    steps = _steps(definition)
    original = state
    # The callers pass a copy already, except start(), whose state is new: change it freely.
    for _ in range(MAX_STEPS_PER_ADVANCE):
        if not step_id:
            state.status, state.due_at, state.wait_event = COMPLETED, None, ""
            state.end_reason = "Reached the end of the journey"
            return Result(state, effects)
        step = steps[step_id]
        kind = step["type"]
        if kind == "branch":
            needs = _branch_needs(step, facts)
            if needs:  # the caller calls again with the facts: leave the state as it was
                return Result(original, needs=needs, changed=False)
        visits = state.context.setdefault("visits", {})
        visits[step_id] = visits.get(step_id, 0) + 1
        state.step = step_id
        effects.append(Entered(step_id))
        if kind == "send":
            suffix = step_id if visits[step_id] == 1 else f"{step_id}:{visits[step_id]}"
            effects.append(Send(step_id, step["template"], tuple(step["channels"]),
                                step.get("category") or "", step.get("priority") or "", suffix))
            effects.append(Left(step_id, "passed"))
            step_id = step.get("next")
        elif kind == "delay":
            due, reason = _delay_until(step, state, facts)
            if due is not None and due > facts.now:
                state.status, state.due_at, state.wait_event = ACTIVE, due, ""
                return Result(state, effects)
            effects.append(Left(step_id, "passed", reason))
            step_id = step.get("next")
        elif kind == "wait":
            state.status, state.wait_event = WAITING, step["event"]
            state.due_at = facts.now + timedelta(seconds=parse_duration(step["timeout"]))
            return Result(state, effects)
        elif kind == "branch":
            step_id, outcome = _choose(step, state, facts)
            effects.append(Left(state.step, outcome))
        else:  # exit
            state.status, state.due_at, state.wait_event = EXITED, None, ""
            state.end_reason = "Exit step"
            effects.append(Left(step_id, "exited", "Exit step"))
            return Result(state, effects)
    state.status, state.due_at, state.end_reason = "failed", None, "Too many steps without a delay or wait"
    return Result(state, effects)


def _choose(step: dict, state: RunState, facts: Facts) -> tuple[str | None, str]:
    data = _data(state, facts, {})
    for i, path in enumerate(step["paths"]):
        if conditions.evaluate(path["conditions"], data, facts.now):
            return path.get("next"), f"path {i + 1}"
    return step.get("default"), "default"


def _branch_needs(step: dict, facts: Facts) -> set[str]:
    needs = set()
    for path in step["paths"]:
        needs |= {f"history:{name}" for name in conditions.history_names(path["conditions"])
                  if facts.history is None or name not in facts.history}
        if facts.messages is None and "'messages." in repr(path["conditions"]):
            needs.add("messages")
    return needs


def _delay_until(step: dict, state: RunState, facts: Facts) -> tuple[datetime | None, str]:
    zone = _zone(facts.timezone)
    if step.get("duration"):
        return facts.now + timedelta(seconds=parse_duration(step["duration"])), ""
    if step.get("until_time"):
        hour, minute = parse_time_of_day(step["until_time"])
        local = facts.now.astimezone(zone)
        target = datetime.combine(local.date(), time(hour, minute), tzinfo=zone)
        if target <= local:
            target = datetime.combine(local.date() + timedelta(days=1), time(hour, minute), tzinfo=zone)
        return target, ""
    value = conditions.lookup(_data(state, facts, {}), step["until_date"])
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        when = None
    if when is None:
        return None, f"No date at {step['until_date']}"
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    return when, "" if when > facts.now else "The date had passed"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _data(state: RunState, facts: Facts, event: dict) -> dict:
    return {"trigger": state.context.get("trigger", {}), "event": event, "recipient": facts.recipient,
            "events": state.context.get("events", {}), "messages": facts.messages or {},
            "history": facts.history or {}}


def _steps(definition: dict) -> dict[str, dict]:
    return {s["id"]: s for s in definition["steps"]}


def _copy(state: RunState) -> RunState:
    return RunState(state.step, state.status, copy.deepcopy(state.context), state.due_at, state.wait_event,
                    state.end_reason)

