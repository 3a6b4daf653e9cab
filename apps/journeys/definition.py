"""The shape of a journey definition, and its validation (pure; the template check is passed in).

    {"trigger": {"event": "cart.abandoned", "conditions": <condition>},
     (or "trigger": {"segment": "pro-users", "exit_on_leave": true}: entered on joining the segment)
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
       {"id": "digest", "type": "digest", "key": "{{ data.thread_id }}", "window": "10m",
        "max_items": 20, "next": …},            # or "until_time": "18:00" instead of "window"
       {"id": "limit", "type": "throttle", "limit": 3, "window": "1h", "key": "{{ data.topic }}",
        "next": …},
       {"id": "crm", "type": "webhook", "method": "POST", "url": "https://…", "headers": {…},
        "body": {"id": "{{ recipient.external_id }}"}, "timeout": 10, "next": …, "on_failure": …},
       {"id": "tag", "type": "update_profile", "set": {"plan": "{{ data.webhooks.crm.body.plan }}"},
        "unset": ["trial"], "next": …},
       {"id": "done", "type": "exit"}]}

digest: the run collects the journey's later trigger events whose key renders the same (instead
of starting new runs) until the window ends or `max_items` arrive, then goes on once with
`data.batch` = {"key", "count", "items": [event properties…, at most 100 kept]} (in templates
also `batch.items`, `batch.count`).
throttle: at most `limit` runs of the journey per recipient (and key) pass it per `window`; the
rest exit ("throttled: 3 per 1h reached").
webhook: the HTTP call is made outside the engine (services.journeys_call_webhooks); the answer
is kept as `webhooks.<step>` = {"status", "body"} for conditions and `data.webhooks.<step>` for
Liquid; after the retries (or a 4xx) the run goes to `on_failure` (or fails without one).
update_profile: merges the rendered `set` into the recipient's attributes and removes `unset`,
as an API profile update does. Strings in keys, URLs, headers, bodies and `set` are Liquid (see
expressions.py).

Every step type names its successors in next_fields; new types add an entry there, validation
below and a handler in engine.py.
"""

import re
from collections.abc import Callable

from apps.journeys import conditions, expressions

STEP_TYPES = ("send", "delay", "wait", "branch", "exit", "digest", "throttle", "webhook", "update_profile")
# Steps that hold a run until time passes: a loop must contain one.
BLOCKING = ("delay", "wait", "digest")
WEBHOOK_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_WEBHOOK_TIMEOUT = 30  # seconds
MAX_DIGEST_ITEMS = 1000  # the largest `max_items`; at most DIGEST_ITEMS_KEPT are stored
DIGEST_ITEMS_KEPT = 100
REENTRY_RULES = ("once", "one_at_a_time", "every_time", "cooldown")
CHANNELS = ("email", "sms", "push", "chat", "webhook", "inbox")
PRIORITIES = ("", "critical", "high", "normal", "low")
_DURATION = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")
_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
STEP_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SEGMENT_KEY = re.compile(r"^[-a-zA-Z0-9_]{1,100}$")
SEGMENT_TRIGGER = "segment:"


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
    if kind in ("send", "delay", "digest", "throttle", "update_profile"):
        return [("next", step.get("next"))]
    if kind == "webhook":
        return [("next", step.get("next")), ("on_failure", step.get("on_failure"))]
    if kind == "wait":
        return [("on_match", step.get("on_match")), ("on_timeout", step.get("on_timeout"))]
    if kind == "branch":
        paths = step.get("paths") if isinstance(step.get("paths"), list) else []
        return [(f"paths[{i}].next", p.get("next") if isinstance(p, dict) else None)
                for i, p in enumerate(paths)] + [("default", step.get("default"))]
    return []


def validate(definition, *, template_published: Callable[[str], bool] | None = None,
             segment_exists: Callable[[str], bool] | None = None) -> dict[str, list[str]]:
    """Errors by field path: `trigger.event`, `steps.<step id>.template`… Empty when valid."""
    errors: dict[str, list[str]] = {}

    def add(path: str, message: str) -> None:
        errors.setdefault(path, []).append(message)

    if not isinstance(definition, dict):
        return {"definition": ["A journey definition must be a JSON object."]}
    _validate_entry(definition, add, segment_exists)
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


def trigger_key(definition: dict) -> str:
    """The version's indexed trigger: the event name, or `segment:<key>`."""
    trigger = definition["trigger"]
    return f"{SEGMENT_TRIGGER}{trigger['segment']}" if trigger.get("segment") else trigger["event"].strip()


def _validate_entry(definition: dict, add, segment_exists=None) -> None:
    trigger = definition.get("trigger")
    event = trigger.get("event") if isinstance(trigger, dict) else None
    segment = trigger.get("segment") if isinstance(trigger, dict) else None
    if segment is not None:
        if event is not None:
            add("trigger.segment", "Start the journey with an event or a segment, not both.")
        elif not isinstance(segment, str) or not SEGMENT_KEY.match(segment):
            add("trigger.segment", "Give the key of the segment whose new members enter the journey.")
        elif segment_exists is not None and not segment_exists(segment):
            add("trigger.segment", f"There is no segment '{segment}'.")
        if not isinstance(trigger.get("exit_on_leave", False), bool):
            add("trigger.exit_on_leave", "Give true (members who leave the segment exit) or false.")
    elif not isinstance(event, str) or not event.strip():
        add("trigger.event", "Name the event that starts the journey, or give a segment.")
    elif event.startswith(SEGMENT_TRIGGER):
        add("trigger.event", f"Event names starting with '{SEGMENT_TRIGGER}' are kept for segment triggers.")
    if isinstance(trigger, dict):
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
    elif kind == "digest":
        _validate_digest(path, step, add)
    elif kind == "throttle":
        _validate_throttle(path, step, add)
    elif kind == "webhook":
        _validate_webhook(path, step, add)
    elif kind == "update_profile":
        _validate_update_profile(path, step, add)


def _positive_int(value, maximum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= maximum


def _validate_key(path: str, step: dict, add) -> None:
    if step.get("key") not in (None, ""):
        for p, message in expressions.value_errors(step["key"], f"{path}.key"):
            add(p, message)
        if not isinstance(step["key"], str):
            add(f"{path}.key", 'Give the key as a Liquid template, e.g. "{{ data.thread_id }}".')


def _validate_digest(path: str, step: dict, add) -> None:
    _validate_key(path, step, add)
    given = [k for k in ("window", "until_time") if step.get(k)]
    if len(given) != 1:
        add(f"{path}.window", "Give exactly one of: window (a duration), until_time (HH:MM).")
    elif given[0] == "window" and parse_duration(step["window"]) is None:
        add(f"{path}.window", 'Give a duration, e.g. "10m", "1d".')
    elif given[0] == "until_time" and parse_time_of_day(step["until_time"]) is None:
        add(f"{path}.until_time", 'Give a time of day as HH:MM, e.g. "18:00".')
    if step.get("max_items") is not None and not _positive_int(step["max_items"], MAX_DIGEST_ITEMS):
        add(f"{path}.max_items", f"Give a whole number from 1 to {MAX_DIGEST_ITEMS}, or leave it out.")


def _validate_throttle(path: str, step: dict, add) -> None:
    _validate_key(path, step, add)
    if not _positive_int(step.get("limit"), 1_000_000):
        add(f"{path}.limit", "Give the number of runs allowed per window (a whole number, at least 1).")
    if parse_duration(step.get("window")) is None:
        add(f"{path}.window", 'Give a duration, e.g. "1h", "1d".')


def _validate_webhook(path: str, step: dict, add) -> None:
    if step.get("method", "POST") not in WEBHOOK_METHODS:
        add(f"{path}.method", f"Choose one of: {', '.join(WEBHOOK_METHODS)}.")
    url = step.get("url")
    if not isinstance(url, str) or not url.strip().lower().startswith(("http://", "https://")):
        add(f"{path}.url", "Give an http(s) URL (it may use Liquid).")
    else:
        for p, message in expressions.value_errors(url, f"{path}.url"):
            add(p, message)
    headers = step.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        add(f"{path}.headers", "Give the headers as an object of strings.")
    else:
        for p, message in expressions.value_errors(headers, f"{path}.headers"):
            add(p, message)
    for p, message in expressions.value_errors(step.get("body"), f"{path}.body"):
        add(p, message)
    if step.get("timeout") is not None and not _positive_int(step["timeout"], MAX_WEBHOOK_TIMEOUT):
        add(f"{path}.timeout", f"Give a timeout in seconds, from 1 to {MAX_WEBHOOK_TIMEOUT}.")


def _validate_update_profile(path: str, step: dict, add) -> None:
    values, unset = step.get("set") or {}, step.get("unset") or []
    if not isinstance(values, dict):
        add(f"{path}.set", "Give the attributes to set as an object: name → value (Liquid).")
        values = {}
    if not isinstance(unset, list) or not all(isinstance(n, str) and n for n in unset):
        add(f"{path}.unset", "Give a list of attribute names to remove.")
        unset = []
    if not values and not unset:
        add(f"{path}.set", "Set or unset at least one attribute.")
    for p, message in expressions.value_errors(values, f"{path}.set"):
        add(p, message)
    both = sorted(set(values) & set(unset))
    if both:
        add(f"{path}.unset", f"Both set and unset: {', '.join(both)}.")


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
