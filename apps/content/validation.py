"""Checks a draft field by field, so the admin shows each error on its field with line and column:
Liquid syntax, unknown filters, variables and partials; MJML; JSON; required fields per channel;
SMS length — rendered with the template's sample data."""

import json
import re

from django.conf import settings
from liquid.exceptions import LiquidError, TemplateNotFoundError

from apps.content import sms
from apps.content.compiling import CONTENT_MARKER, LIQUID, mjml_errors
from apps.content.rendering import ROOTS, describe, make_environment, position

MAX_FIELD_CHARS = 100_000
# One of each tuple is required once a channel is used (as the send API requires).
REQUIRED = {
    "email": [("email_subject",), ("email_body",)],
    "sms": [("sms_text",)],
    "push": [("push_title", "push_body")],
    "inbox": [("inbox_title", "inbox_body")],
    "chat": [("chat_text", "chat_blocks")],
    "webhook": [("webhook_body",)],
}
JSON_SOURCES = {"push_data": dict, "chat_blocks": list, "webhook_body": (dict, list)}
NOT_LIQUID = {"email_format"}
BLOCKS = {"if", "unless", "for", "case", "capture", "tablerow", "comment", "raw"}
BLOCK_TAG = re.compile(r"{%-?\s*(\w+)?")


def liquid_errors(source: str, *, partials: dict[str, str], html: bool = False) -> list[str]:
    """Syntax errors, unknown filters, unknown partials and variables other than recipient,
    data, tenant and message — each with its line and column."""
    if len(source) > MAX_FIELD_CHARS:
        return [f"At most {MAX_FIELD_CHARS:,} characters."]
    env = make_environment(partials=partials, html=html, strict=False)
    try:
        analysis = env.from_string(source).analyze(include_partials=True)
    except TemplateNotFoundError as error:
        line, column = position(source, error.token.start_index) if error.token else (1, 1)
        return [f"Line {line}, column {column}: there is no partial named '{error.message}'."]
    except LiquidError as error:
        if error.token is None or error.token.start_index < 0:
            return [_located(source, env, error)]
        return [_capitalised(describe(error))]
    errors = []
    for name, spans in analysis.filters.items():
        if name not in env.filters:
            errors.append(_at(source, partials, spans[0], f"unknown filter '{name}'"))
    for name, variables in analysis.globals.items():
        if name not in ROOTS and name not in ("content", "forloop", "tablerowloop"):
            errors.append(_at(source, partials, variables[0].span,
                              f"unknown variable '{name}' (use {', '.join(ROOTS)})"))
    return errors


def _located(source: str, env, error: LiquidError) -> str:
    """Where an error python-liquid reports without a position (an incomplete expression, an
    unclosed block) is: the first tag that fails alone, or a block left open."""
    for match in LIQUID.finditer(source):
        tag = match.group(0)
        name = BLOCK_TAG.match(tag)
        if tag.startswith("{%") and name is None:
            continue  # else, endif, …: only meaningful inside their block
        if name is not None and name.group(1) in BLOCKS:
            tag += "{% end" + name.group(1) + " %}"
        try:
            env.from_string(tag)
        except LiquidError as failed:
            line, column = position(source, match.start())
            return f"Line {line}, column {column}: {failed.message}"
    return f"{_capitalised(str(error.message))} (a block is not closed)"


def _at(source: str, partials: dict, span, message: str) -> str:
    where, text = "", source
    if span.template_name and span.template_name in partials:
        where, text = f"In partial '{span.template_name}', ", partials[span.template_name]
    line, column = position(text, span.index)
    return f"{where}{'l' if where else 'L'}ine {line}, column {column}: {message}"


def _capitalised(message: str) -> str:
    return message[:1].upper() + message[1:]


def json_errors(field: str, source: str) -> list[str]:
    try:
        value = json.loads(source)
    except json.JSONDecodeError as error:
        return [f"Invalid JSON: line {error.lineno}, column {error.colno}: {error.msg}"]
    expected = JSON_SOURCES[field]
    if not isinstance(value, expected):
        kind = "a list" if expected is list else "an object" if expected is dict else "an object or list"
        return [f"Must be {kind}."]
    errors = []
    for leaf in _strings(value):
        errors += [f"In the string {leaf[:40]!r}: {e}" for e in liquid_errors(leaf, partials={})]
    return errors


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def content_errors(fields: dict[str, str], *, partials: dict[str, str]) -> dict[str, list[str]]:
    """Errors of one locale's content fields (a Template's or a TemplateLocale's)."""
    errors: dict[str, list[str]] = {}
    for field, value in fields.items():
        if not value or field in NOT_LIQUID:
            continue
        if field in JSON_SOURCES:
            found = json_errors(field, value)
        else:
            found = liquid_errors(value, partials=partials, html=field == "email_body")
            if field == "email_body" and not found and fields.get("email_format") == "mjml":
                found = mjml_errors(value)
        if found:
            errors[field] = found
    for channel, required in REQUIRED.items():
        if not any(f.startswith(channel + "_") and f not in NOT_LIQUID and fields[f].strip() for f in fields):
            continue
        for options in required:
            if not any(fields.get(f, "").strip() for f in options):
                others = ", ".join(o.split("_", 1)[1] for o in options[1:])
                also = f" (or {others})" if others else ""
                errors.setdefault(options[0], []).append(f"Required when {channel} is used{also}.")
    return errors


def layout_errors(body: str, fmt: str, *, partials: dict[str, str]) -> list[str]:
    markers = len(CONTENT_MARKER.findall(body))
    if markers != 1:
        return ["Put {{ content }} exactly once where the email body goes."]
    errors = liquid_errors(body, partials=partials, html=True)
    if not errors and fmt == "mjml":
        if not body.lstrip().startswith("<mjml"):
            return ["An MJML layout is a whole document: <mjml><mj-body>…{{ content }}…</mj-body></mjml>."]
        errors = mjml_errors(body)
    return errors


def sms_errors(rendered: str) -> list[str]:
    """The SMS as rendered with the sample data, against the segment limit."""
    count, limit = sms.segments(rendered), settings.SIGNALBOX_SMS_MAX_SEGMENTS
    if count.segments > limit:
        return [f"With the sample data this SMS is {count.characters} characters ({count.encoding}): "
                f"{count.segments} segments, more than the limit of {limit}."]
    return []
