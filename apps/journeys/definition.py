"""The shape of a journey definition, and its validation (pure; the template check is passed in).

    {"trigger": {"event": "cart.abandoned", "conditions": <condition>},
     "reentry": {"rule": "once" | "one_at_a_time" | "every_time" | "cooldown", "cooldown": "7d"},
     "exit_events": [{"event": "order.completed", "conditions": <condition>}],
     "goal": {"event": "order.completed", "within": "7d"},
     "start": "wait",
     "steps": [
       {"id": "wait", "type": "delay", "duration": "45m", "next": "sms"},
       {"id": "sms", "type": "send", "template": "cart-reminder", "channels": ["sms", "email"],
        "category": "", "priority": "", "next": "morning"},
       {"id": "morning", "type": "delay", "until_time": "09:00", "next": "mail"},
       {"id": "renewal", "type": "delay", "until_date": "trigger.properties.renews_at", "next": …},
       {"id": "shared", "type": "wait", "event": "project.shared", "conditions": <condition>,
        "timeout": "3d", "on_match": "…", "on_timeout": "…"},
       {"id": "check", "type": "branch", "paths": [{"conditions": <condition>, "next": "…"}],
        "default": "…"},
       {"id": "done", "type": "exit"}]}

Every step type names its successors in NEXT_FIELDS; new types (segments, broadcasts…) add an
entry there and a handler in engine.py.
"""

import re
from collections.abc import Callable

from apps.journeys import conditions

STEP_TYPES = ("send", "delay", "wait", "branch", "exit")
# Steps that hold a run until time passes: a loop must contain one.
BLOCKING = ("delay", "wait")
REENTRY_RULES = ("once", "one_at_a_time", "every_time", "cooldown")
CHANNELS = ("email", "sms", "push", "chat", "webhook", "inbox")
PRIORITIES = ("", "critical", "high", "normal", "low")
_DURATION = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")
_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
STEP_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def parse_duration(value) -> int | None:
    """Seconds in "1d 2h 45m 10s" (any part optional) or a plain number of seconds; None if bad."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value > 0 else None
    if not isinstance(value, str) or not value.strip():
        return None
    match = _DURATION.match(value)
    if not match or not any(match.groups()):
        return None
    d, h, m, s = (int(g or 0) for g in match.groups())
    seconds = d * 86400 + h * 3600 + m * 60 + s
    return seconds or None


def parse_time_of_day(value) -> tuple[int, int] | None:
    match = _TIME_OF_DAY.match(value) if isinstance(value, str) else None
    return (int(match[1]), int(match[2])) if match else None


def next_fields(step: dict) -> list[tuple[str, str]]:
    """(field, step id) for each successor a step names."""
    kind = step.get("type")
    if kind in ("send", "delay"):
        return [("next", step.get("next"))]
    if kind == "wait":
        return [("on_match", step.get("on_match")), ("on_timeout", step.get("on_timeout"))]
    if kind == "branch":
        paths = step.get("paths") if isinstance(step.get("paths"), list) else []
        return [(f"paths[{i}].next", p.get("next") if isinstance(p, dict) else None)
                for i, p in enumerate(paths)] + [("default", step.get("default"))]
    return []


def validate(definition, *, template_published: Callable[[str], bool] | None = None) -> dict[str, list[str]]:
    """Errors by field path: `trigger.event`, `steps.<step id>.template`… Empty when valid."""
    errors: dict[str, list[str]] = {}

    def add(path: str, message: str) -> None:
        errors.setdefault(path, []).append(message)

    if not isinstance(definition, dict):
        return {"definition": ["A journey definition must be a JSON object."]}
    _validate_entry(definition, add)
    steps = definition.get("steps")
    if not isinstance(steps, list) or not steps:
        add("steps", "Add at least one step.")
        return errors
    by_id: dict[str, dict] = {}
    for i, step in enumerate(steps):
        sid = step.get("id") if isinstance(step, dict) else None
        if not isinstance(sid, str) or not STEP_ID.match(sid):
            add(f"steps[{i}].id", "Each step needs an id: letters, digits, - or _.")
        elif sid in by_id:
            add(f"steps.{sid}.id", f"Two steps have the id '{sid}'.")
        else:
            by_id[sid] = step
    for sid, step in by_id.items():
        _validate_step(sid, step, by_id, add, template_published)
    start = definition.get("start") or (steps[0].get("id") if isinstance(steps[0], dict) else None)
    if not isinstance(start, str) or start not in by_id:
        add("start", f"The start step '{start}' does not exist.")
    for sid in _loops_without_wait(by_id):
        add(f"steps.{sid}.next", "This step is in a loop with no delay or wait: a run would never stop.")
    return errors


def _validate_entry(definition: dict, add) -> None:
    trigger = definition.get("trigger")
    event = trigger.get("event") if isinstance(trigger, dict) else None
    if not isinstance(event, str) or not event.strip():
        add("trigger.event", "Name the event that starts the journey.")
    else:
        for path, message in conditions.validate(trigger.get("conditions"), "trigger.conditions"):
            add(path, message)
    reentry = definition.get("reentry") or {"rule": "once"}
    if not isinstance(reentry, dict) or reentry.get("rule") not in REENTRY_RULES:
        add("reentry.rule", f"Choose one of: {', '.join(REENTRY_RULES)}.")
    elif reentry["rule"] == "cooldown" and parse_duration(reentry.get("cooldown")) is None:
        add("reentry.cooldown", 'Give the cool-down as a duration, e.g. "7d" or "12h".')
    exits = definition.get("exit_events") or []
    if not isinstance(exits, list):
        add("exit_events", "Give a list of exit events.")
        exits = []
    for i, item in enumerate(exits):
        if not isinstance(item, dict) or not isinstance(item.get("event"), str) or not item["event"]:
            add(f"exit_events[{i}].event", "Name the event.")
            continue
        for path, message in conditions.validate(item.get("conditions"), f"exit_events[{i}].conditions"):
            add(path, message)
    goal = definition.get("goal")
    if goal:
        if not isinstance(goal, dict) or not isinstance(goal.get("event"), str) or not goal["event"]:
            add("goal.event", "Name the goal event, or leave the goal out.")
        elif goal.get("within") is not None and parse_duration(goal["within"]) is None:
            add("goal.within", 'Give a duration, e.g. "7d".')


def _validate_step(sid: str, step: dict, by_id: dict, add, template_published) -> None:
    path = f"steps.{sid}"
    kind = step.get("type")
    if kind not in STEP_TYPES:
        add(f"{path}.type", f"Unknown step type {kind!r}; use one of: {', '.join(STEP_TYPES)}.")
        return
    for field, target in next_fields(step):
        # No successor: the run completes there.
        if target is not None and not isinstance(target, str):
            add(f"{path}.{field}", "Give the id of a step.")
        elif target and target not in by_id:
            add(f"{path}.{field}", f"Points to '{target}', which is not a step of this journey.")
    if kind == "send":
        _validate_send(path, step, add, template_published)
    elif kind == "delay":
        given = [k for k in ("duration", "until_time", "until_date") if step.get(k)]
        if len(given) != 1:
            add(f"{path}.duration", "Give exactly one of: duration, until_time, until_date.")
        elif given[0] == "duration" and parse_duration(step["duration"]) is None:
            add(f"{path}.duration", 'Give a duration, e.g. "45m", "1d 2h".')
        elif given[0] == "until_time" and parse_time_of_day(step["until_time"]) is None:
            add(f"{path}.until_time", 'Give a time of day as HH:MM, e.g. "09:00".')
        elif given[0] == "until_date" and str(step["until_date"]).split(".")[0] not in conditions.ROOTS:
            add(f"{path}.until_date",
                f"Give a field path starting with one of: {', '.join(conditions.ROOTS)}.")
    elif kind == "wait":
        if not isinstance(step.get("event"), str) or not step["event"].strip():
            add(f"{path}.event", "Name the event to wait for.")
        if parse_duration(step.get("timeout")) is None:
            add(f"{path}.timeout", 'Give a timeout, e.g. "3d".')
        for p, message in conditions.validate(step.get("conditions"), f"{path}.conditions"):
            add(p, message)
    elif kind == "branch":
        paths = step.get("paths")
        if not isinstance(paths, list) or not paths:
            add(f"{path}.paths", "Give at least one path.")
            return
        for i, branch in enumerate(paths):
            if not isinstance(branch, dict) or branch.get("conditions") in (None, {}):
                add(f"{path}.paths[{i}].conditions", "Give this path's conditions.")
                continue
            for p, message in conditions.validate(branch["conditions"], f"{path}.paths[{i}].conditions"):
                add(p, message)


def _validate_send(path: str, step: dict, add, template_published) -> None:
    key = step.get("template")
    if not isinstance(key, str) or not key:
        add(f"{path}.template", "Choose a template.")
    elif template_published is not None and not template_published(key):
        add(f"{path}.template", f"The template '{key}' does not exist or has no published version.")
    channels = step.get("channels")
    if not isinstance(channels, list) or not channels or any(c not in CHANNELS for c in channels):
        add(f"{path}.channels", f"Give a list of channels, in fallback order, from: {', '.join(CHANNELS)}.")
    elif len(set(channels)) != len(channels):
        add(f"{path}.channels", "A channel is listed twice.")
    if step.get("priority", "") not in PRIORITIES:
        add(f"{path}.priority", f"Choose one of: {', '.join(p for p in PRIORITIES if p)}.")
    category = step.get("category", "")
    if not isinstance(category, str) or len(category) > 64:
        add(f"{path}.category", "Give a category name (at most 64 characters).")


def _loops_without_wait(by_id: dict) -> list[str]:
    """Steps on a cycle made only of non-blocking steps (depth-first search for back edges)."""
    def instant(sid) -> bool:
        return isinstance(sid, str) and sid in by_id and by_id[sid].get("type") not in BLOCKING

    graph = {sid: [t for _, t in next_fields(step) if instant(t)]
             for sid, step in by_id.items() if instant(sid)}
    on_cycle: set[str] = set()
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                on_cycle.update(stack[stack.index(nxt):])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])
    return sorted(on_cycle)
