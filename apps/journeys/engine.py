"""Pure journey transitions: (definition, run state, input, facts) → new state + effects.

No database, no Celery, no clock: the services gather the facts (now, the recipient's profile,
their event history, earlier messages' statuses), call these functions and execute the effects.
When a branch needs facts it was not given, the result says so in `needs` and changes nothing;
the service loads them and calls again, so facts are only loaded for runs that use them.

The newer steps keep their state in the run's context:
- digest: `batch` = {"key", "count", "items"}; the run holds ACTIVE at the step with
  due_at = the window's end; `absorb` adds a later trigger event (the consumer finds the run by
  `digest_key`), and reaching `max_items` or the due time moves it on.
- throttle: needs `throttle:<step>:<key>` → Facts.throttles[(step, key)], the runs of the journey
  that passed the step with that key within the window (the path rows, counted by the service).
- webhook: the run parks ACTIVE, due now, with wait_event "webhook:<step>" and
  `pending_webhook` = {"step", "attempts"}; the service renders the request (`webhook_request`),
  calls outside any transaction and applies the answer (`on_webhook`): the answer goes to
  `webhooks.<step>` = {"status", "body"}.
- update_profile: an UpdateProfile effect (attribute → value, None removes); later steps of the
  same advance see the new attributes, later advances reload the profile.
"""

import copy
import json
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apps.journeys import conditions, expressions
from apps.journeys.definition import DIGEST_ITEMS_KEPT, parse_duration, parse_time_of_day

ACTIVE, WAITING = "active", "waiting"
COMPLETED, EXITED, CANCELLED, FAILED = "completed", "exited", "cancelled", "failed"
WEBHOOK_PENDING = "webhook:"  # wait_event prefix of a run whose webhook call is to be made
DEFAULT_WEBHOOK_TIMEOUT = 10
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
    throttles: dict[tuple[str, str], int] | None = None  # (step, key) → passes in the window, on demand


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


@dataclass(frozen=True)
class UpdateProfile:
    step: str
    attributes: dict  # name → value; None removes the attribute


@dataclass(frozen=True)
class WebhookAnswer:
    """What the service's HTTP call came to: `error` empty on success; `retry_in` seconds when
    it will try again, None when this failure is final."""

    status: int | None
    body: object = None
    error: str = ""
    retry_in: float | None = None


@dataclass
class Result:
    state: RunState
    effects: list = field(default_factory=list)
    needs: set[str] = field(default_factory=set)  # "history:<event>", "messages", "throttle:<step>:<key>"
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
    step = _steps(definition)[state.step]
    if step["type"] == "webhook":  # the call is the service's to make (journeys_call_webhooks)
        return Result(state, changed=False)
    state = _copy(state)
    if state.status == WAITING:
        effects = [Left(step["id"], "timeout", f"No {step['event']} within {step['timeout']}")]
        return _run(definition, state, step.get("on_timeout"), facts, effects)
    reason = f"{state.context['batch']['count']} items" if step["type"] == "digest" else ""
    return _run(definition, state, step.get("next"), facts, [Left(step["id"], "passed", reason)])


def digest_key(definition: dict, state: RunState, event: dict, facts: Facts) -> str | None:
    """The key `event` (a later trigger) has for the run's open digest; None when the run is not
    collecting one."""
    step = _steps(definition).get(state.step)
    if state.status != ACTIVE or not step or step["type"] != "digest" or "batch" not in state.context:
        return None
    try:
        return _key(step, facts, expressions.template_data({"trigger": event}))
    except expressions.ExpressionError:
        return None


def absorb(definition: dict, state: RunState, event: dict, facts: Facts) -> Result:
    """Add `event` to the run's open digest (see digest_key); at `max_items` the run moves on."""
    state = _copy(state)
    step = _steps(definition)[state.step]
    batch = state.context["batch"]
    batch["count"] += 1
    if len(batch["items"]) < DIGEST_ITEMS_KEPT:
        batch["items"].append(event.get("properties") or {})
    if step.get("max_items") and batch["count"] >= step["max_items"]:
        effects = [Left(step["id"], "passed", f"{batch['count']} items")]
        return _run(definition, state, step.get("next"), facts, effects)
    return Result(state)


def webhook_request(definition: dict, state: RunState, facts: Facts) -> dict:
    """The pending webhook call: method, url, headers, body (bytes), timeout. Raises
    expressions.ExpressionError when its Liquid fails."""
    step = _steps(definition)[state.context["pending_webhook"]["step"]]
    context = _liquid(state, facts)
    body = step.get("body")
    headers = expressions.render_value(step.get("headers") or {}, context)
    headers = {str(k): str(v) for k, v in headers.items()}
    if isinstance(body, dict | list):
        content = json.dumps(expressions.render_value(body, context), separators=(",", ":")).encode()
        headers.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        content = expressions.render(body, context).encode()
    else:
        content = b""
    return {"method": step.get("method") or "POST", "url": expressions.render(step["url"], context).strip(),
            "headers": headers, "body": content,
            "timeout": step.get("timeout") or DEFAULT_WEBHOOK_TIMEOUT}


def on_webhook(definition: dict, state: RunState, answer: WebhookAnswer, facts: Facts) -> Result:
    """Apply the answer of the run's pending webhook call."""
    pending = state.context.get("pending_webhook")
    if state.status != ACTIVE or not pending or state.wait_event != WEBHOOK_PENDING + pending["step"]:
        return Result(state, changed=False)
    state = _copy(state)
    step = _steps(definition)[pending["step"]]
    if answer.error and answer.retry_in is not None:
        state.context["pending_webhook"]["attempts"] += 1
        state.due_at = facts.now + timedelta(seconds=answer.retry_in)
        return Result(state)
    del state.context["pending_webhook"]
    state.wait_event = ""
    response = {"status": answer.status, "body": answer.body}
    if not answer.error:
        state.context.setdefault("webhooks", {})[step["id"]] = response
        effects = [Left(step["id"], "passed", f"HTTP {answer.status}")]
        return _run(definition, state, step.get("next"), facts, effects)
    state.context.setdefault("webhooks", {})[step["id"]] = {**response, "error": answer.error}
    effects = [Left(step["id"], "failed", answer.error)]
    if step.get("on_failure"):
        return _run(definition, state, step["on_failure"], facts, effects)
    state.status, state.due_at, state.end_reason = FAILED, None, f"Webhook {step['id']}: {answer.error}"[:200]
    return Result(state, effects)


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
        elif kind in ("digest", "throttle", "update_profile"):
            try:
                if kind == "digest":
                    step_id, holds = _digest(step, state, facts, effects)
                elif kind == "throttle":
                    step_id, holds, needs = _throttle(step, state, facts, effects)
                    if needs:  # the caller counts and calls again: leave the state as it was
                        return Result(original, needs=needs, changed=False)
                else:
                    step_id, holds, facts = _update_profile(step, state, facts, effects)
            except expressions.ExpressionError as error:
                reason = f"steps.{step_id}: {error}"[:200]
                state.status, state.due_at, state.wait_event, state.end_reason = FAILED, None, "", reason
                effects.append(Left(step_id, "failed", reason))
                return Result(state, effects)
            if holds:
                return Result(state, effects)
        elif kind == "webhook":
            state.status, state.due_at, state.wait_event = ACTIVE, facts.now, WEBHOOK_PENDING + step_id
            state.context["pending_webhook"] = {"step": step_id, "attempts": 0}
            return Result(state, effects)
        else:  # exit
            state.status, state.due_at, state.wait_event = EXITED, None, ""
            state.end_reason = "Exit step"
            effects.append(Left(step_id, "exited", "Exit step"))
            return Result(state, effects)
    state.status, state.due_at, state.end_reason = "failed", None, "Too many steps without a delay or wait"
    return Result(state, effects)


def throttle_reason(key: str) -> str:
    """The reason recorded on a throttle step's passed path rows, which the service counts."""
    return f"key: {key}"[:300] if key else ""


def _key(step: dict, facts: Facts, data: dict) -> str:
    if not step.get("key"):
        return ""
    context = expressions.context_for_run(recipient=facts.recipient, data=data)
    return expressions.render(step["key"], context).strip()[:200]


def _liquid(state: RunState, facts: Facts) -> dict:
    data = expressions.template_data(state.context)
    return expressions.context_for_run(recipient=facts.recipient, data=data)


def _digest(step: dict, state: RunState, facts: Facts, effects: list) -> tuple[str | None, bool]:
    """Open the batch with the trigger; (next step, whether the run holds here)."""
    trigger = state.context.get("trigger", {})
    key = _key(step, facts, expressions.template_data(state.context))
    state.context["batch"] = {"key": key, "count": 1, "items": [trigger.get("properties") or {}]}
    if step.get("max_items") == 1:
        effects.append(Left(step["id"], "passed", "1 items"))
        return step.get("next"), False
    if step.get("window"):
        due = facts.now + timedelta(seconds=parse_duration(step["window"]))
    else:
        due, _ = _delay_until({"until_time": step["until_time"]}, state, facts)
    state.status, state.due_at, state.wait_event = ACTIVE, due, ""
    return step["id"], True


def _throttle(step: dict, state: RunState, facts: Facts, effects: list) -> tuple[str | None, bool, set]:
    """(next step, whether the run ended here, the facts needed first)."""
    key = _key(step, facts, expressions.template_data(state.context))
    passed = (facts.throttles or {}).get((step["id"], key))
    if passed is None:
        return None, False, {f"throttle:{step['id']}:{key}"}
    if passed >= step["limit"]:
        reason = f"throttled: {step['limit']} per {step['window']} reached"
        state.status, state.due_at, state.wait_event, state.end_reason = EXITED, None, "", reason
        effects.append(Left(step["id"], "exited", reason))
        return None, True, set()
    effects.append(Left(step["id"], "passed", throttle_reason(key)))
    return step.get("next"), False, set()


def _update_profile(step: dict, state: RunState, facts: Facts, effects: list
                    ) -> tuple[str | None, bool, Facts]:
    """The effect, and facts whose profile has the change for the steps after it."""
    context = _liquid(state, facts)
    attributes = {str(name): expressions.render_value(value, context)
                  for name, value in (step.get("set") or {}).items()}
    attributes |= dict.fromkeys(step.get("unset") or [])
    effects.append(UpdateProfile(step["id"], attributes))
    effects.append(Left(step["id"], "passed"))
    merged = {**(facts.recipient.get("attributes") or {}), **attributes}
    merged = {k: v for k, v in merged.items() if v is not None}
    return step.get("next"), False, replace(facts, recipient={**facts.recipient, "attributes": merged})


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
            "history": facts.history or {}, "webhooks": state.context.get("webhooks", {}),
            "batch": state.context.get("batch", {})}


def _steps(definition: dict) -> dict[str, dict]:
    return {s["id"]: s for s in definition["steps"]}


def _copy(state: RunState) -> RunState:
    return RunState(state.step, state.status, copy.deepcopy(state.context), state.due_at, state.wait_event,
                    state.end_reason)

