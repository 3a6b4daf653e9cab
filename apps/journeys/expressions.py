"""Liquid in journey steps: digest and throttle keys, webhook URLs, headers and bodies, profile
attribute values (pure; python-liquid through apps/content/rendering.py's sandbox: its limits,
guarded filters, no loader, non-strict so a missing value renders empty).

A step expression sees what a send step's template sees — `recipient` (profile fields and
attributes) and `data` (the trigger's properties, plus `data.trigger`, `data.events`,
`data.batch` {items, count, key} after a digest, `data.webhooks.<step>` {status, body} after a
webhook step) — except the digest key of an incoming event, where `data` is that event's
properties.
"""

import functools

from liquid.exceptions import LiquidError

from apps.content.rendering import context_for, describe, make_environment, plain

_ENV = make_environment(partials={}, html=False, strict=False)
MAX_RESULT = 10_000  # characters a key or an attribute value may have


class ExpressionError(Exception):
    pass


@functools.lru_cache(maxsize=512)
def _parse(source: str):
    return _ENV.from_string(source)


def syntax_error(source) -> str | None:
    """Why `source` is not a Liquid template, or None."""
    if not isinstance(source, str):
        return "Give a Liquid template as a string."
    try:
        _parse(source)
    except LiquidError as error:
        return describe(error)
    return None


def render(source: str, context: dict) -> str:
    """`source` rendered with `context` (see `context_for_run`); ExpressionError says why not."""
    try:
        return _parse(source).render(context)
    except LiquidError as error:
        raise ExpressionError(describe(error)) from None


def render_value(value, context: dict):
    """Strings are Liquid; lists and objects are rendered string by string; the rest as given."""
    if isinstance(value, str):
        return render(value, context)[:MAX_RESULT]
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    return value


def value_errors(value, path: str) -> list[tuple[str, str]]:
    """Syntax errors of every string in `value` (see render_value), by path."""
    if isinstance(value, str):
        error = syntax_error(value)
        return [(path, f"Liquid: {error}")] if error else []
    if isinstance(value, dict):
        return [e for k, v in value.items() for e in value_errors(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [e for i, v in enumerate(value) for e in value_errors(v, f"{path}[{i}]")]
    return []


def template_data(context: dict) -> dict:
    """A run's data as a send step's template gets it (`data`), from the run's context."""
    trigger = context.get("trigger", {})
    data = {**(trigger.get("properties") or {}), "trigger": trigger, "events": context.get("events", {})}
    for name in ("batch", "webhooks"):
        if name in context:
            data[name] = context[name]
    return data


def context_for_run(*, recipient: dict, data: dict) -> dict:
    try:
        return context_for(recipient=recipient, data=plain(data), tenant={}, message={})
    except ValueError as error:
        raise ExpressionError(str(error)) from None
