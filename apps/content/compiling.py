"""Publish-time compilation: a template's sources → the `compiled` dict its version renders from.

Email: the body goes into its layout, MJML is compiled (mjml-python, i.e. MRML) and CSS inlined
(css-inline) here, once, so a send only renders Liquid. Liquid must come through both intact, so
it is swapped out first and put back afterwards: a control tag (`{% for %}`) becomes an HTML
comment, which MJML keeps in place between sections (no `mj-raw` needed) and an HTML parser never
moves out of a table; an output tag (`{{ x }}`), and any tag inside an element's attributes,
becomes a unique alphanumeric token. When no text version is written, it is derived from the
compiled HTML the same way (html2text, every Liquid tag a token).

Pure: no database, no file system (`mj-include` is refused), no network (remote stylesheets are
not loaded).
"""

from __future__ import annotations

import json
import re
import secrets

import css_inline
import html2text
import mjml
from liquid.exceptions import LiquidError

from apps.content.rendering import CHANNEL_FIELDS, JSON_FIELDS, make_environment, position

CONTENT_MARKER = re.compile(r"{{-?\s*content\s*-?}}")
LIQUID = re.compile(
    r"{%-?\s*raw\s*-?%}.*?{%-?\s*endraw\s*-?%}"
    r"|{%-?\s*comment\s*-?%}.*?{%-?\s*endcomment\s*-?%}"
    r"|{%.*?%}|{{.*?}}",
    re.DOTALL,
)
MJML_POSITION = re.compile(r" at position (\d+):(\d+)")
PREHEADER_STYLE = ("display:none;font-size:1px;line-height:1px;max-height:0;max-width:0;opacity:0;"
                   "overflow:hidden;mso-hide:all")
# Where each source field's errors are reported: the admin form field of the same name.
EMPTY_JSON = {("push", "data"): {}, ("chat", "blocks"): [], ("webhook", "body"): {}}


class CompileError(Exception):
    """`errors` maps a field ("email_body", "pt-BR/email_body", "layout", "partial:footer") to
    its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class _Swap:
    """Swaps Liquid out of a document and back in (see the module docstring)."""

    def __init__(self):
        self.nonce = secrets.token_hex(4)
        self.tags: list[str] = []

    def out(self, source: str, *, comments: bool) -> str:
        def swap(match: re.Match) -> str:
            number, tag = len(self.tags), match.group(0)
            self.tags.append(tag)
            in_element = source.rfind("<", 0, match.start()) > source.rfind(">", 0, match.start())
            if comments and tag.startswith("{%") and not in_element:
                return f"<!--lq{self.nonce}n{number}-->"
            return f"lq{self.nonce}n{number}x"

        return LIQUID.sub(swap, source)

    def back(self, text: str) -> tuple[str, list[str]]:
        """The text with every tag restored, and the control tags that went missing."""
        seen: set[int] = set()

        def restore(match: re.Match) -> str:
            number = int(match.group(1) or match.group(2))
            seen.add(number)
            return self.tags[number]

        pattern = re.compile(rf"<!--lq{self.nonce}n(\d+)-->|lq{self.nonce}n(\d+)x")
        text = pattern.sub(restore, text)
        lost = [t for n, t in enumerate(self.tags) if n not in seen and t.startswith("{%")]
        return text, lost


def mask_liquid(source: str) -> str:
    """`source` with every Liquid tag replaced by filler of the same length and lines (a comment
    for a control tag), so a parser's error offsets point into the original."""

    def mask(match: re.Match) -> str:
        tag = match.group(0)
        filler = re.sub(r"[^\n]", "x", tag)
        if tag.startswith("{%") and len(tag) >= 7:
            return "<!--" + filler[4:-3] + "-->"
        return filler

    return LIQUID.sub(mask, source)


def _no_include(path: str) -> str:
    raise ValueError(f"mj-include is not available ({path}); use a partial")


def _mjml_message(error: ValueError) -> str:
    message = str(error).replace(" in root template", "")
    if "unable to load included template" in message:
        return "mj-include is not available (templates never read files); use a partial instead"
    return message


def mjml_errors(source: str) -> list[str]:
    """Errors MJML finds in `source`, a whole <mjml> document or the inside of <mj-body>, with
    the line and column when MRML gives an offset."""
    body_only = not source.lstrip().startswith("<mjml")
    prefix = "<mjml><mj-body>" if body_only else ""
    document = prefix + mask_liquid(source) + ("</mj-body></mjml>" if body_only else "")
    try:
        mjml.mjml2html(document, include_loader=_no_include)
    except ValueError as error:
        found = MJML_POSITION.search(str(error))
        message = MJML_POSITION.sub("", _mjml_message(error))
        if found and int(found.group(1)) >= len(prefix):
            line, column = position(source, int(found.group(1)) - len(prefix))
            return [f"Invalid MJML: line {line}, column {column}: {message}"]
        return [f"Invalid MJML: {message} (check that every tag is closed)"]
    return []


def html_to_text(html: str) -> str:
    """A text version of an HTML template, Liquid intact. Raises ValueError if a control tag
    sat where text cannot keep it (e.g. inside <style>)."""
    swap = _Swap()
    converter = html2text.HTML2Text()
    converter.body_width = 0  # no hard wrapping: a token or URL must never be split
    converter.ignore_images = True
    converter.ignore_tables = True
    converter.ignore_emphasis = True
    text, lost = swap.back(converter.handle(swap.out(html, comments=False)))
    if lost:
        raise ValueError(f"the Liquid tag {lost[0]} has no place in a text version")
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def _inject_preheader(html: str, preheader: str) -> str:
    if not preheader:
        return html
    hidden = f'<div style="{PREHEADER_STYLE}">{preheader}</div>'
    body = re.search(r"<body\b[^>]*>", html, re.IGNORECASE)
    return html[: body.end()] + hidden + html[body.end():] if body else hidden + html


def compile_email(email: dict, layout: dict | None, field: str = "email_body") -> dict:
    """subject, preheader, html, text: Liquid sources, MJML compiled and CSS inlined."""
    body, fmt = email.get("body", ""), email.get("format") or "mjml"
    if layout is not None:
        if layout["format"] != fmt:
            raise CompileError({field: [
                f"The layout '{layout['name']}' is {layout['format'].upper()}; this body is "
                f"{fmt.upper()}. Pick a layout of the same kind, or none."]})
        document = CONTENT_MARKER.sub(lambda _: body, layout["body"], count=1)
    elif fmt == "mjml" and not body.lstrip().startswith("<mjml"):
        document = f"<mjml><mj-body>{body}</mj-body></mjml>"
    else:
        document = body
    swap = _Swap()
    html = swap.out(document, comments=True)
    if fmt == "mjml":
        try:
            html = mjml.mjml2html(html, include_loader=_no_include)
        except ValueError as error:
            message = MJML_POSITION.sub("", _mjml_message(error))
            raise CompileError({field: [f"Invalid MJML with the layout: {message}"]}) from None
    try:
        html = css_inline.CSSInliner(keep_style_tags=True, load_remote_stylesheets=False).inline(html)
    except css_inline.InlineError as error:
        raise CompileError({field: [f"The CSS cannot be inlined: {error}"]}) from None
    html, lost = swap.back(html)
    if lost:
        raise CompileError({field: [
            f"MJML dropped the Liquid tag {lost[0]}: put it between sections or inside an "
            "mj-text or mj-raw, not where MJML allows no content."]})
    text = email.get("text", "")
    if not text:
        try:
            text = html_to_text(html)
        except ValueError as error:
            raise CompileError({field.replace("body", "text"): [
                f"No text version could be derived ({error}); write one."]}) from None
    preheader = email.get("preheader", "")
    return {"subject": email.get("subject", ""), "preheader": preheader,
            "html": _inject_preheader(html, preheader), "text": text}


def _compile_channel(channel: str, fields: dict, layout: dict | None, prefix: str) -> dict:
    if channel == "email":
        return compile_email(fields, layout, f"{prefix}email_body")
    out = {}
    for name in CHANNEL_FIELDS[channel]:
        value = fields.get(name, "")
        if (channel, name) in JSON_FIELDS:
            try:
                value = json.loads(value) if value.strip() else EMPTY_JSON[(channel, name)]
            except json.JSONDecodeError as error:
                raise CompileError({f"{prefix}{channel}_{name}": [
                    f"Invalid JSON: line {error.lineno}, column {error.colno}: {error.msg}"]}) from None
        out[name] = value
    return out


def compile_source(source: dict) -> dict:
    """The `compiled` dict of a version (see rendering.CompiledVersion) from its `source`."""
    partials = source.get("partials", {})
    text_partials = {}
    for name, body in partials.items():
        try:
            text_partials[name] = html_to_text(body) if "<" in body else body
        except ValueError as error:
            raise CompileError({f"partial:{name}": [str(error)]}) from None
    layout = source.get("layout")
    base = {channel: _compile_channel(channel, fields, layout, "")
            for channel, fields in source["content"].items()}
    locales = {"": base}
    for locale, content in source.get("locales", {}).items():
        own = {channel: _compile_channel(channel, fields, layout, f"{locale}/")
               for channel, fields in content.items()}
        locales[locale] = {**base, **own}
    compiled = {"strict": bool(source.get("strict")),
                "partials": {"html": partials, "text": text_partials}, "locales": locales}
    _check_parses(compiled)
    return compiled


def _check_parses(compiled: dict) -> None:
    """Every compiled email still parses as Liquid (a tag split between layout and body, or
    moved by MJML, would not)."""
    env = make_environment(partials=compiled["partials"]["html"], html=True, strict=False)
    for locale, channels in compiled["locales"].items():
        email = channels.get("email")
        if email is None:
            continue
        for name in ("html", "text"):
            try:
                env.from_string(email[name])
            except LiquidError as error:
                prefix = f"{locale}/" if locale else ""
                raise CompileError({f"{prefix}email_body": [
                    f"After compiling with the layout, the {name} version does not parse: "
                    f"{error.message}"]}) from None
