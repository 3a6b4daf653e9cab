"""The one condition language of journeys (triggers, waits, exits, branches), stored as JSON.

    {"all": [cond, …]}  {"any": [cond, …]}  {"not": cond}
    {"field": "trigger.properties.plan", "op": "eq", "value": "pro"}
    {"field": "event.properties.order_id", "op": "eq", "value": {"ref": "trigger.properties.order_id"}}

Field paths start with one of ROOTS: `trigger` (the event that started the run), `event` (the
event being matched, in waits and exits), `recipient` (profile fields and `attributes`),
`events.<step>` (the event a wait step matched), `messages.<step>.status` (the message an earlier
send step created), `history.<event name>` (when the recipient last did that event, or null),
`webhooks.<step>.status|body…` (the answer a webhook step got), `batch.count|items|key` (a digest's).
Pure: no database; the caller gathers the data (see engine.Facts).
"""

from datetime import datetime, timedelta

ROOTS = ("trigger", "event", "recipient", "events", "messages", "history", "webhooks", "batch")
OPERATORS = {
    "eq": "equals", "ne": "not equals", "contains": "contains", "in": "is one of",
    "exists": "exists", "not_exists": "does not exist", "gt": "greater than", "gte": "at least",
    "lt": "less than", "lte": "at most", "within_last_days": "within the last N days",
}
_MISSING = object()
MAX_DEPTH = 8


def validate(cond, path: str = "conditions", depth: int = 0) -> list[tuple[str, str]]:
    """Errors as (path, message); empty when `cond` is valid. None/{} mean "always"."""
    if cond in (None, {}):
        return []
    if not isinstance(cond, dict):
        return [(path, "A condition must be an object.")]
    if depth > MAX_DEPTH:
        return [(path, f"Conditions nest at most {MAX_DEPTH} deep.")]
    for group in ("all", "any"):
        if group in cond:
            items = cond[group]
            if not isinstance(items, list) or not items:
                return [(f"{path}.{group}", "Give a non-empty list of conditions.")]
            return [e for i, item in enumerate(items)
                    for e in validate(item, f"{path}.{group}[{i}]", depth + 1)]
    if "not" in cond:
        return validate(cond["not"], f"{path}.not", depth + 1) or (
            [(f"{path}.not", "Give a condition.")] if cond["not"] in (None, {}) else [])
    errors = []
    field, op = cond.get("field"), cond.get("op")
    if not isinstance(field, str) or field.split(".")[0] not in ROOTS or len(field.split(".")) < 2:
        errors.append((f"{path}.field", f"Give a field path starting with one of: {', '.join(ROOTS)}."))
    if not isinstance(op, str) or op not in OPERATORS:
        errors.append((f"{path}.op", f"Unknown operator {op!r}; use one of: {', '.join(OPERATORS)}."))
        return errors
    value = cond.get("value")
    if op in ("exists", "not_exists"):
        return errors
    if "value" not in cond:
        errors.append((f"{path}.value", f"The operator '{op}' needs a value."))
    elif op == "in" and not isinstance(value, list):
        errors.append((f"{path}.value", "'in' needs a list of values."))
    elif op == "within_last_days" and (not isinstance(value, int | float) or isinstance(value, bool)
                                       or value <= 0):
        errors.append((f"{path}.value", "Give a positive number of days."))
    elif isinstance(value, dict) and set(value) != {"ref"}:
        errors.append((f"{path}.value", 'A value that is an object must be {"ref": "<field path>"}.'))
    elif isinstance(value, dict) and str(value["ref"]).split(".")[0] not in ROOTS:
        errors.append((f"{path}.value", f"A reference starts with one of: {', '.join(ROOTS)}."))
    return errors


def lookup(data: dict, path: str):
    """The value at a dotted path, or _MISSING. Keys may themselves hold dots (event names under
    `history`): the longest key that matches wins."""
    parts = path.split(".")
    current = data
    i = 0
    while i < len(parts):
        if not isinstance(current, dict):
            return _MISSING
        for j in range(len(parts), i, -1):
            key = ".".join(parts[i:j])
            if key in current:
                current, i = current[key], j
                break
        else:
            return _MISSING
    return current


def evaluate(cond, data: dict, now: datetime) -> bool:
    """Whether `cond` holds for `data` (a dict keyed by ROOTS). Assumes `validate` passed."""
    if cond in (None, {}):
        return True
    if "all" in cond:
        return all(evaluate(c, data, now) for c in cond["all"])
    if "any" in cond:
        return any(evaluate(c, data, now) for c in cond["any"])
    if "not" in cond:
        return not evaluate(cond["not"], data, now)
    actual = lookup(data, cond["field"])
    op, expected = cond["op"], cond.get("value")
    if isinstance(expected, dict):
        expected = lookup(data, expected["ref"])
        if expected is _MISSING:
            return False
    if op == "exists":
        return actual is not _MISSING and actual is not None
    if op == "not_exists":
        return actual is _MISSING or actual is None
    if actual is _MISSING:
        return op == "ne"
    return _compare(op, actual, expected, now)


def _compare(op: str, actual, expected, now: datetime) -> bool:
    try:
        if op == "eq":
            return actual == expected
        if op == "ne":
            return actual != expected
        if op == "contains":
            return expected in actual if isinstance(actual, list | str | dict) else False
        if op == "in":
            return actual in expected
        if op == "within_last_days":
            when = datetime.fromisoformat(actual) if isinstance(actual, str) else None
            return when is not None and now - timedelta(days=expected) <= when <= now
        ordered = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b,
                   "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b}[op]
        return ordered(actual, expected)
    except (TypeError, ValueError):
        # A comparison between a string and a number, a malformed date: not a match, never a crash.
        return False


def history_names(cond) -> set[str]:
    """The event names a condition asks the recipient's history about (`history.<name>`)."""
    if not isinstance(cond, dict):
        return set()
    names = set()
    for group in ("all", "any"):
        for item in cond.get(group) or []:
            names |= history_names(item)
    if "not" in cond:
        names |= history_names(cond["not"])
    value = cond.get("value")
    for path in (cond.get("field"), value.get("ref") if isinstance(value, dict) else None):
        if isinstance(path, str) and path.startswith("history."):
            names.add(path.removeprefix("history."))
    return names
