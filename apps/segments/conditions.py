"""Segment conditions: the journeys' condition language (apps/journeys/conditions.py) restricted to
what a recipient's row and event history answer, checked here and compiled to SQL.

Roots:
    recipient.<column>            external_id, email, phone, locale, timezone, created_at
    recipient.attributes.<path>   a key (dots descend into objects) of the JSON attributes
    history.<event name>          when the recipient last did that event (null if never)

`compile_q` turns a condition into one Q on Recipient (AND/OR/NOT for all/any/not; attribute
tests as JSON operators, history tests as EXISTS subqueries on the event index (tenant,
recipient, name, occurred_at DESC)); never a Python loop over recipients. `evaluate` is the
same condition over one recipient in Python (journeys' evaluator on `facts(recipient)`): the
tests check the two agree. Blank profile columns count as missing (`exists` is false), a value
of the wrong type is never a match (a string is not greater than a number), booleans are not
numbers.
"""

import json
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import BooleanField, Exists, F, OuterRef, Q, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Collate, StrIndex
from django.db.models.lookups import GreaterThan, GreaterThanOrEqual, LessThan, LessThanOrEqual

from apps.journeys import conditions

ROOTS = ("recipient", "history")
COLUMNS = ("external_id", "email", "phone", "locale", "timezone", "created_at")
HISTORY_OPS = ("exists", "not_exists", "within_last_days", "gt", "gte", "lt", "lte")
COLUMN_OPS = ("eq", "ne", "in", "contains", "exists", "not_exists", "gt", "gte", "lt", "lte")
CREATED_OPS = ("exists", "not_exists", "within_last_days", "gt", "gte", "lt", "lte")
ATTRIBUTE_OPS = ("eq", "ne", "in", "contains", "exists", "not_exists", "gt", "gte", "lt", "lte")
_SCALAR = (str, int, float, bool)
_NEVER = Q(pk__in=[])
_ALWAYS = Q(pk__isnull=False)  # not Q(): ~Q() is Q() again, which would match everyone


def _leaves(cond, path: str):
    """(path, leaf condition) for each comparison of a structurally valid condition."""
    if cond in (None, {}):
        return
    for group in ("all", "any"):
        if group in cond:
            for i, item in enumerate(cond[group]):
                yield from _leaves(item, f"{path}.{group}[{i}]")
            return
    if "not" in cond:
        yield from _leaves(cond["not"], f"{path}.not")
        return
    yield path, cond


def validate(cond, path: str = "conditions") -> list[tuple[str, str]]:
    """Errors as (path, message): the language's own checks, then what segments accept."""
    errors = conditions.validate(cond, path)
    if errors:
        return errors
    for where, leaf in _leaves(cond, path):
        errors += _validate_leaf(leaf, where)
    return errors


def _validate_leaf(leaf: dict, path: str) -> list[tuple[str, str]]:
    field, op, value = leaf["field"], leaf["op"], leaf.get("value")
    root, _, rest = field.partition(".")
    if root not in ROOTS:
        return [(f"{path}.field", "A segment's fields start with recipient. (profile and attributes) "
                                  "or history. (events the recipient did).")]
    if isinstance(value, dict):
        return [(f"{path}.value", "Segments compare with plain values, not references.")]
    if root == "history":
        allowed = HISTORY_OPS
    elif rest.startswith("attributes.") and len(rest) > len("attributes."):
        allowed = ATTRIBUTE_OPS
    elif rest == "created_at":
        allowed = CREATED_OPS
    elif rest in COLUMNS:
        allowed = COLUMN_OPS
    else:
        return [(f"{path}.field", f"Unknown recipient field '{rest}'; use one of: {', '.join(COLUMNS)}, "
                                  "or attributes.<name>.")]
    if op not in allowed:
        return [(f"{path}.op", f"'{op}' does not apply to {field}; use one of: {', '.join(allowed)}.")]
    if op in ("exists", "not_exists", "within_last_days"):
        return []
    dated = root == "history" or rest == "created_at"
    if dated and (not isinstance(value, str) or _parse_time(value) is None):
        return [(f"{path}.value", "Give a date or time, e.g. 2026-01-31 or 2026-01-31T09:00:00+00:00.")]
    values = value if op == "in" else [value]
    if rest in COLUMNS and any(not isinstance(v, str) for v in values):
        return [(f"{path}.value", f"{field} holds text: compare it with text.")]
    ordered = op in ("gt", "gte", "lt", "lte")
    if ordered and (isinstance(value, bool) or not isinstance(value, str | int | float)):
        return [(f"{path}.value", "Compare with a number or a text.")]
    if op in ("contains", "in") and any(not isinstance(v, _SCALAR) for v in values):
        each = " for each." if op == "in" else "."
        return [(f"{path}.value", f"Give a text, number or true/false{each}")]
    return []


def _parse_time(value: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# --- What a segment depends on ------------------------------------------------------------------

def history_names(cond) -> set[str]:
    return conditions.history_names(cond)


def uses_profile(cond) -> bool:
    """Whether a profile change (columns, attributes) can change the segment's members."""
    return cond in (None, {}) or any(leaf["field"].startswith("recipient.") for _, leaf in _leaves(cond, ""))


def time_relative(cond) -> bool:
    """Whether members change with time alone (within_last_days): recomputed by the tick."""
    return any(leaf["op"] == "within_last_days" for _, leaf in _leaves(cond, ""))


# --- SQL -------------------------------------------------------------------------------------------

def compile_q(cond, *, tenant_id: int, now: datetime) -> Q:
    """One Q on Recipient that holds exactly for the members (same semantics as `evaluate`)."""
    if cond in (None, {}):
        return _ALWAYS
    if "all" in cond:
        q = _ALWAYS
        for item in cond["all"]:
            q &= compile_q(item, tenant_id=tenant_id, now=now)
        return q
    if "any" in cond:
        q = _NEVER
        for item in cond["any"]:
            q |= compile_q(item, tenant_id=tenant_id, now=now)
        return q
    if "not" in cond:
        return ~compile_q(cond["not"], tenant_id=tenant_id, now=now)
    root, _, rest = cond["field"].partition(".")
    if root == "history":
        return _history(rest, cond["op"], cond.get("value"), tenant_id, now)
    if rest.startswith("attributes."):
        return _attribute(rest.removeprefix("attributes.").split("."), cond["op"], cond.get("value"))
    if rest == "created_at":
        return _created(cond["op"], cond.get("value"), now)
    return _column(rest, cond["op"], cond.get("value"))


def _history(name: str, op: str, value, tenant_id: int, now: datetime) -> Q:
    from apps.events.models import Event

    def did(**when) -> Exists:
        return Exists(Event.objects.filter(tenant_id=tenant_id, recipient_id=OuterRef("pk"), name=name,
                                           **when))

    if op == "exists":
        return Q(did())
    if op == "not_exists":
        return ~Q(did())
    if op == "within_last_days":
        return Q(did(occurred_at__gte=now - timedelta(days=value), occurred_at__lte=now))
    when = _parse_time(value)
    if op in ("gt", "gte"):  # the last time is after: some time is
        return Q(did(**{f"occurred_at__{op}": when}))
    # The last time is before: some time is, and none is at or after.
    return Q(did()) & ~Q(did(**{"occurred_at__gte" if op == "lt" else "occurred_at__gt": when}))


def _created(op: str, value, now: datetime) -> Q:
    if op == "exists":
        return _ALWAYS
    if op == "not_exists":
        return _NEVER
    if op == "within_last_days":
        return Q(created_at__gte=now - timedelta(days=value), created_at__lte=now)
    return Q(**{f"created_at__{op}": _parse_time(value)})


def _column(name: str, op: str, value) -> Q:
    present = Q(**{f"{name}__isnull": False}) & ~Q(**{name: ""})
    if op == "exists":
        return present
    if op == "not_exists":
        return ~present
    if op == "eq":
        return present & Q(**{name: value})
    if op == "ne":
        return ~(present & Q(**{name: value}))
    if op == "in":
        return present & Q(**{f"{name}__in": value})
    if op == "contains":  # case-sensitive on both databases (LIKE is not, on SQLite)
        return present & Q(GreaterThan(StrIndex(name, Value(value)), 0))
    # Code-point order, as Python compares strings.
    column = Collate(name, "C") if connection.vendor == "postgresql" else F(name)
    return present & Q(_ORDER[op](column, Value(value)))


_ORDER = {"gt": GreaterThan, "gte": GreaterThanOrEqual, "lt": LessThan, "lte": LessThanOrEqual}
_SQL_ORDER = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _attribute(keys: list[str], op: str, value) -> Q:
    """A test on one attribute, as SQL on the JSON column; COALESCE(…, false) keeps NOT two-valued."""
    sql, params = (_attribute_postgresql if connection.vendor == "postgresql" else _attribute_sqlite)(
        keys, op, value)
    # The SQL is made of constants; every value and key goes as a parameter.
    return Q(RawSQL(f"COALESCE(({sql}), false)", params, output_field=BooleanField()))  # noqa: S611


_PG_TYPE = {bool: "boolean", int: "number", float: "number", str: "string"}
_COLUMN = '"recipients_recipient"."attributes"'


def _attribute_postgresql(keys: list[str], op: str, value) -> tuple[str, list]:
    at = f"({_COLUMN} #> %s::text[])"
    if op in ("exists", "not_exists"):
        sql = f"{at} IS NOT NULL AND jsonb_typeof({at}) <> 'null'"
        return (sql if op == "exists" else f"NOT COALESCE(({sql}), false)"), [keys, keys]
    if op in ("eq", "ne"):
        if isinstance(value, _SCALAR) or value is None:  # containment: the GIN index answers
            nested = value
            for key in reversed(keys):
                nested = {key: nested}
            sql, params = f"{_COLUMN} @> %s::jsonb", [json.dumps(nested)]
        else:
            sql, params = f"{at} = %s::jsonb", [keys, json.dumps(value)]
        return (sql if op == "eq" else f"NOT COALESCE(({sql}), false)"), params
    if op == "in":
        return f"{at} IN (SELECT jsonb_array_elements(%s::jsonb))", [keys, json.dumps(value)]
    if op == "contains":
        parts = [f"(jsonb_typeof({at}) = 'array' AND {at} @> %s::jsonb)"]
        params = [keys, keys, json.dumps([value])]
        if isinstance(value, str):
            parts += [f"(jsonb_typeof({at}) = 'string' AND strpos({at} #>> '{{}}', %s) > 0)",
                      f"(jsonb_typeof({at}) = 'object' AND {at} ? %s)"]
            params += [keys, keys, value, keys, keys, value]
        return " OR ".join(parts), params
    if isinstance(value, str):
        return (f"jsonb_typeof({at}) = 'string' AND ({at} #>> '{{}}') COLLATE \"C\" {_SQL_ORDER[op]} %s",
                [keys, keys, value])
    return f"jsonb_typeof({at}) = 'number' AND ({at})::numeric {_SQL_ORDER[op]} %s", [keys, keys, value]


def _sqlite_path(keys: list[str]) -> str:
    return "$" + "".join(f'."{key}"' for key in keys)


def _sqlite_is(value, kind: str, extract: str, path) -> tuple[str, list]:
    """SQL that holds when the JSON value (`kind` its json_type, `extract` its SQL value, each
    taking `path` as a parameter when it is not None) equals a plain `value`."""
    p = [] if path is None else [path]
    if value is None:
        return f"{kind} = 'null'", p
    if isinstance(value, bool):
        return f"{kind} = '{'true' if value else 'false'}'", p
    if isinstance(value, int | float):
        return f"{kind} IN ('integer', 'real') AND {extract} = %s", [*p, *p, value]
    if isinstance(value, str):
        return f"{kind} = 'text' AND {extract} = %s", [*p, *p, value]
    return (f"{kind} IN ('array', 'object') AND {extract} = json(%s)",
            [*p, *p, json.dumps(value, separators=(",", ":"))])


def _attribute_sqlite(keys: list[str], op: str, value) -> tuple[str, list]:
    path = _sqlite_path(keys)
    kind, extract = f"json_type({_COLUMN}, %s)", f"json_extract({_COLUMN}, %s)"
    if op in ("exists", "not_exists"):
        sql = f"{kind} IS NOT NULL AND {kind} <> 'null'"
        return (sql if op == "exists" else f"NOT COALESCE(({sql}), false)"), [path, path]
    if op in ("eq", "ne"):
        sql, params = _sqlite_is(value, kind, extract, path)
        return (sql if op == "eq" else f"NOT COALESCE(({sql}), false)"), params
    if op == "in":
        parts = [_sqlite_is(v, kind, extract, path) for v in value]
        return " OR ".join(f"({sql})" for sql, _ in parts), [p for _, ps in parts for p in ps]
    if op == "contains":
        element, params = _sqlite_is(value, "e.type", "e.value", None)
        sql = f"({kind} = 'array' AND EXISTS (SELECT 1 FROM json_each({_COLUMN}, %s) AS e WHERE {element}))"  # noqa: S608
        params = [path, path, *params]
        if isinstance(value, str):
            sql += (f" OR ({kind} = 'text' AND instr({extract}, %s) > 0)"
                    f" OR ({kind} = 'object' AND json_type({_COLUMN}, %s) IS NOT NULL)")
            params += [path, path, value, path, _sqlite_path([*keys, value])]
        return sql, params
    types = "'text'" if isinstance(value, str) else "'integer', 'real'"
    return f"{kind} IN ({types}) AND {extract} {_SQL_ORDER[op]} %s", [path, path, value]


# --- Python, for one recipient ---------------------------------------------------------------------

def facts(recipient, history: dict[str, datetime | None]) -> dict:
    """What `evaluate` sees of a recipient: non-blank columns, attributes, last event times."""
    profile = {name: getattr(recipient, name) for name in COLUMNS[:-1] if getattr(recipient, name)}
    profile["created_at"] = recipient.created_at.isoformat()
    profile["attributes"] = dict(recipient.attributes or {})
    return {"recipient": profile,
            "history": {name: when.isoformat() if when else None for name, when in history.items()}}


def evaluate(cond, data: dict, now: datetime) -> bool:
    return conditions.evaluate(cond, data, now)
