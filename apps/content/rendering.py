"""The pure renderer: (compiled template version, context) → content per channel.

No database, no file system, no network: a version's `compiled` dict (made at publish time by
apps/content/compiling.py) holds every source it needs, partials included, and the context holds
only plain dicts, lists and scalars. Liquid (python-liquid) is bounded by its own limits — loop
iterations, output size, local namespace size, render depth — and by a guard on every filter
(see `_guarded`), because a time limit by signal cannot work inside worker threads.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from liquid import CachingDictLoader, Environment, FalsyStrictUndefined, Undefined, is_undefined
from liquid.exceptions import FilterError, LiquidError
from liquid.filter import liquid_filter

# The only variables a template sees (each a plain dict).
ROOTS = ("recipient", "data", "tenant", "message", "batch")
# Content fields per channel, named as the send API's `content` names them.
CHANNEL_FIELDS = {
    "email": ("subject", "preheader", "html", "text"),
    "sms": ("text",),
    "push": ("title", "body", "image", "deep_link", "data"),
    "inbox": ("title", "body", "action_url", "avatar"),
    "chat": ("text", "blocks"),
    "webhook": ("body",),
}
# Fields whose source is JSON: each string in it is a Liquid template, so the result is always
# valid JSON whatever the data holds.
JSON_FIELDS = {("push", "data"), ("chat", "blocks"), ("webhook", "body")}
MAX_ITEMS = 10_000  # items a filter may take or return
MAX_STRING = 256 * 1024  # characters a filter may return
MAX_CONTEXT_DEPTH = 20  # nesting of the data given to a template


class RenderError(Exception):
    """A template failed to render: strict-mode undefined variable, a limit hit, a bad filter
    argument. `message` names where (channel, field, line and column)."""

    def __init__(self, message: str, *, channel: str = "", field: str = ""):
        super().__init__(message)
        self.message = message
        self.channel = channel
        self.field = field


class SandboxedEnvironment(Environment):
    # https://jg-rp.github.io/liquid/guides/limits
    loop_iteration_limit = 10_000
    output_stream_limit = 512 * 1024
    local_namespace_limit = 256 * 1024
    context_depth_limit = 10


class _Strict(FalsyStrictUndefined):
    """Strict mode: printing an undefined variable is an error, but `if` tests and the
    `default` filter still work on it, as marketers expect."""

    force_liquid_default = True


def _size(value) -> int | None:
    if isinstance(value, str | list | tuple | range | dict):
        return len(value)
    return None


def _guarded(name: str, func: Callable) -> Callable:
    """Refuse huge inputs and outputs around a filter: `(1..100000000) | join` or a chain of
    `replace` would otherwise build gigabytes before the output limit is ever checked."""

    @functools.wraps(func)
    def guard(value, *args, **kwargs):
        for item in (value, *args):
            if isinstance(item, list | tuple | range) and len(item) > MAX_ITEMS:
                raise FilterError(f"{name}: more than {MAX_ITEMS:,} items", token=None)
        if name == "replace" and len(args) >= 2 and isinstance(value, str):
            old, new = str(args[0]), str(args[1])
            grows = value.count(old) * max(len(new) - len(old), 0) if old else len(value) * len(new)
            if len(value) + grows > MAX_STRING:
                raise FilterError(f"replace: the result would exceed {MAX_STRING:,} characters",
                                  token=None)
        result = func(value, *args, **kwargs)
        size = _size(result)
        if size is not None and size > (MAX_STRING if isinstance(result, str) else MAX_ITEMS):
            raise FilterError(f"{name}: the result is too large", token=None)
        return result

    return guard


@liquid_filter
def money(value, symbol: str = "") -> str:
    """`{{ 1234.5 | money }}` → 1,234.50; `{{ 9.9 | money: "€" }}` → €9.90; nothing → ""."""
    if value is None or is_undefined(value):
        return ""
    try:
        amount = Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        raise FilterError(f"money: {value!r} is not a number", token=None) from None
    sign = "-" if amount < 0 else ""
    return f"{sign}{symbol}{abs(amount):,.2f}"


@liquid_filter
def to_json(value) -> str:
    """`{{ data.order | json }}`: the value as JSON."""
    return json.dumps(value, ensure_ascii=False)


def make_environment(*, partials: dict[str, str], html: bool, strict: bool) -> Environment:
    """A sandboxed environment whose only templates are `partials` (no file system).

    `html`: output is HTML-escaped unless marked `| safe` (email bodies); text channels are not
    escaped.
    """
    env = SandboxedEnvironment(
        loader=CachingDictLoader(partials), autoescape=html, strict_filters=True,
        undefined=_Strict if strict else Undefined,
    )
    env.add_filter("money", money)
    env.add_filter("json", to_json)
    env.filters = {name: _guarded(name, f) for name, f in env.filters.items()}
    return env


def position(source: str, index: int) -> tuple[int, int]:
    """1-based line and column of `index` in `source`."""
    line = source.count("\n", 0, index) + 1
    return line, index - (source.rfind("\n", 0, index) + 1) + 1


def describe(error: LiquidError, *, located: bool = True) -> str:
    """'line 3, column 7: unknown filter 'nope'' (or the partial it happened in)."""
    message = str(error.message)
    where = f"in partial '{error.template_name}', " if error.template_name else ""
    token = error.token
    if not located or token is None or token.start_index < 0 or not token.source:
        return f"{where}{message}" if where else message
    line, column = position(token.source, token.start_index)
    return f"{where}line {line}, column {column}: {message}"


def plain(value, depth: int = 0):
    """A copy of `value` made of dicts, lists and scalars only, so a template can never reach a
    model instance, a method or Python internals."""
    if depth > MAX_CONTEXT_DEPTH:
        raise ValueError(f"nested deeper than {MAX_CONTEXT_DEPTH} levels")
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dict):
        return {str(k): plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v, depth + 1) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    raise ValueError(f"{type(value).__name__} values are not allowed (only JSON-like data)")


def context_for(*, recipient: dict, data: dict, tenant: dict, message: dict) -> dict:
    """The render context. A recipient's attributes are reachable directly
    (`recipient.first_name`) as well as under `recipient.attributes`; profile fields win. A
    journey's digest (`data.batch`) is also `batch` (`batch.items`, `batch.count`)."""
    recipient, data = plain(recipient or {}), plain(data or {})
    attributes = recipient.get("attributes") if isinstance(recipient.get("attributes"), dict) else {}
    return {
        "recipient": {**attributes, **recipient},
        "data": data,
        "batch": data.get("batch") if isinstance(data.get("batch"), dict) else {},
        "tenant": plain(tenant or {}),
        "message": plain(message or {}),
    }


_BLANK_LINES = re.compile(r"\n\s*\n(\s*\n)+")
_HREF = re.compile(r'(<a\b[^>]*?\bhref=")([^"]*)(")', re.IGNORECASE)


def rewrite_links(html: str, wrap: Callable[[str], str]) -> str:
    """The click-tracking seam: every `<a href>` of a rendered email through `wrap(url)`."""
    return _HREF.sub(lambda m: m.group(1) + wrap(m.group(2)) + m.group(3), html)


def locale_chain(locale: str, default_locale: str) -> list[str]:
    """pt-BR → pt → the tenant default (and its language) → "" (the template's base content)."""
    chain: list[str] = []
    for tag in (locale, default_locale):
        parts = (tag or "").split("-")
        for n in range(len(parts), 0, -1):
            candidate = "-".join(parts[:n])
            if candidate and candidate not in chain:
                chain.append(candidate)
    return [*chain, ""]


class CompiledVersion:
    """A compiled version ready to render; templates are parsed once, on first use."""

    def __init__(self, compiled: dict):
        self.locales: dict[str, dict] = compiled["locales"]
        strict = compiled.get("strict", False)
        partials = compiled.get("partials", {})
        self._envs = {
            True: make_environment(partials=partials.get("html", {}), html=True, strict=strict),
            False: make_environment(partials=partials.get("text", {}), html=False, strict=strict),
        }
        self._parsed: dict[tuple[bool, str], object] = {}

    def locale_for(self, locale: str, default_locale: str) -> str:
        return next(tag for tag in locale_chain(locale, default_locale) if tag in self.locales)

    def channels(self, locale: str = "") -> list[str]:
        return list(self.locales[locale])

    def render(self, *, locale: str, channel: str, context: dict,
               link_wrapper: Callable[[str], str] | None = None) -> dict:
        """The content of `channel` in `locale`; RenderError names the field at fault."""
        fields = self.locales[locale].get(channel)
        if fields is None:
            raise RenderError(f"the template has no {channel} content", channel=channel)
        out = {}
        for name, source in fields.items():
            try:
                if (channel, name) in JSON_FIELDS:
                    out[name] = self._render_json(source, context)
                else:
                    out[name] = self._render(source, context, html=(channel, name) == ("email", "html"))
            except LiquidError as error:
                # A compiled email body's positions mean nothing to whoever wrote the MJML.
                located = (channel, name) != ("email", "html")
                raise RenderError(f"{channel}.{name}: {describe(error, located=located)}",
                                  channel=channel, field=name) from None
        if channel == "email":
            # A header must stay one line whatever the data holds.
            out["subject"] = " ".join(out["subject"].split())
            out["preheader"] = " ".join(out["preheader"].split())
            # Control tags on lines of their own leave blank runs in the text version.
            out["text"] = _BLANK_LINES.sub("\n\n", out["text"]).strip() + "\n"
            if link_wrapper is not None:
                out["html"] = rewrite_links(out["html"], link_wrapper)
        return out

    def _render(self, source: str, context: dict, *, html: bool = False) -> str:
        if not source:
            return ""
        key = (html, source)
        template = self._parsed.get(key)
        if template is None:
            template = self._parsed[key] = self._envs[html].from_string(source)
        return template.render(context)

    def _render_json(self, value, context: dict):
        if isinstance(value, str):
            return self._render(value, context)
        if isinstance(value, dict):
            return {k: self._render_json(v, context) for k, v in value.items()}
        if isinstance(value, list):
            return [self._render_json(v, context) for v in value]
        return value


# --- Inline content: the send API's `content`, rendered when it uses Liquid ------------------

_INLINE_ENVS = {html: make_environment(partials={}, html=html, strict=False) for html in (True, False)}


def has_liquid(value) -> bool:
    """Whether a string of `value` (or of its lists and objects) holds a Liquid tag or output."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(has_liquid(v) for v in value.values())
    if isinstance(value, list):
        return any(has_liquid(v) for v in value)
    return False


@functools.lru_cache(maxsize=256)
def _inline_parsed(source: str, html: bool):
    """Parsed once per process for a broadcast's thousands of sends of the same content."""
    return _INLINE_ENVS[html].from_string(source)


def _inline_value(value, context: dict | None, html: bool):
    """`value` rendered (parsed only, when `context` is None); lists and objects string by string."""
    if isinstance(value, str):
        if not has_liquid(value):
            return value
        template = _inline_parsed(value, html)
        return value if context is None else template.render(context)
    if isinstance(value, dict):
        return {k: _inline_value(v, context, html) for k, v in value.items()}
    if isinstance(value, list):
        return [_inline_value(v, context, html) for v in value]
    return value


def inline_errors(channel: str, fields: dict) -> dict[str, list[str]]:
    """Liquid syntax errors of one channel's inline content, by field (`content.email.subject`)."""
    errors = {}
    for name, value in fields.items():
        try:
            _inline_value(value, None, html=(channel, name) == ("email", "html"))
        except LiquidError as error:
            errors[f"content.{channel}.{name}"] = [describe(error)]
    return errors


def render_inline(channel: str, fields: dict, context: dict) -> dict:
    """One channel's inline content with its Liquid rendered (undefined variables print
    nothing; email HTML escapes what it prints). RenderError names the field at fault."""
    out = {}
    for name, value in fields.items():
        try:
            out[name] = _inline_value(value, context, html=(channel, name) == ("email", "html"))
        except LiquidError as error:
            raise RenderError(f"{channel}.{name}: {describe(error)}", channel=channel, field=name) from None
    if channel == "email":
        for name in ("subject", "preheader"):  # a header must stay one line whatever the data holds
            if isinstance(out.get(name), str):
                out[name] = " ".join(out[name].split())
    return out
