"""Checking a send request: `POST /api/v1/messages`."""

import uuid
from dataclasses import dataclass

from apps.content import rendering
from apps.core import parsing
from apps.core.errors import InvalidInput
from apps.events.native import parse_recipient
from apps.messaging.models import Channel, Message, Priority

# Fields each channel's content must have (one of each tuple).
REQUIRED_CONTENT = {
    Channel.EMAIL: [("subject",), ("text", "html")],
    Channel.SMS: [("text",)],
    Channel.PUSH: [("title", "body")],
    Channel.CHAT: [("text", "blocks")],
    Channel.WEBHOOK: [("body",)],
    Channel.INBOX: [("title", "body")],
}


MAX_RECIPIENTS = 1000


@dataclass
class SendRequest:
    recipients: list[tuple[str, dict | None]]  # external id, inline profile (upserted) or None
    fields: dict  # of each recipient's Message
    key: str  # the Idempotency-Key, or a fresh id

    def use_template(self, version) -> None:
        """The template's category, unless the request named one."""
        self.fields["category"] = self.fields["category"] or version.template.category or "general"

    def messages(self, *, tenant, recipient_ids: dict[str, int], test_mode: bool) -> list[Message]:
        """One unsaved message per recipient, in request order."""
        return [Message(tenant=tenant, recipient_id=recipient_ids[external_id], test_mode=test_mode,
                        dedupe_key=f"api:{self.key}:{external_id}", **self.fields)
                for external_id, _ in self.recipients]


def parse_send(raw: dict, *, idempotency_key: str | None) -> SendRequest:
    errors: dict[str, list[str]] = {}

    def check(fn):
        try:
            return fn()
        except InvalidInput as exc:
            errors.update(exc.fields)

    recipients = check(lambda: _recipients(raw))
    channels = check(lambda: _channels(raw))
    template = check(lambda: parsing.string(raw, "template", max_length=100, default=""))
    if template and raw.get("content") is not None:
        errors["content"] = ["Give `content` or `template`, not both."]
    content = {} if template else check(lambda: _content(raw, channels or []))
    priority = check(lambda: _choice(raw, "priority", Priority.values, Priority.NORMAL))
    category = check(lambda: parsing.string(raw, "category", max_length=64, default=""))
    data = check(lambda: parsing.obj(raw, "data"))
    send_at = check(lambda: parsing.timestamp(raw, "send_at"))
    expires_at = check(lambda: parsing.timestamp(raw, "expires_at"))
    if errors:
        raise InvalidInput("Invalid message: " + "; ".join(errors), fields=errors)
    fields = dict(channels=channels, content=content, template_key=template, priority=priority,
                  category=category or ("" if template else "general"), data=data, send_at=send_at,
                  expires_at=expires_at, source=Message.Source.API)
    return SendRequest(recipients=recipients, fields=fields, key=idempotency_key or uuid.uuid4().hex)


def _recipients(raw: dict) -> list[tuple[str, dict | None]]:
    """`recipient` (one), or `recipients` (a list: the same message to each)."""
    if raw.get("recipients") is None:
        return [parse_recipient(raw.get("recipient"), "recipient")]
    if raw.get("recipient") is not None:
        raise InvalidInput.field("recipients", "Give `recipient` or `recipients`, not both.")
    value = raw["recipients"]
    if not isinstance(value, list) or not 0 < len(value) <= MAX_RECIPIENTS:
        raise InvalidInput.field("recipients", f"A list of 1 to {MAX_RECIPIENTS} recipients.")
    errors, parsed, seen = {}, [], set()
    for index, item in enumerate(value):
        path = f"recipients[{index}]"
        try:
            external_id, profile = parse_recipient(item, path)
        except InvalidInput as exc:
            errors.update(exc.fields)
            continue
        if external_id in seen:
            errors[path] = [f"{external_id!r} is listed twice."]
        seen.add(external_id)
        parsed.append((external_id, profile))
    if errors:
        raise InvalidInput("Invalid recipients.", fields=errors)
    return parsed


def _channels(raw: dict) -> list[str]:
    if raw.get("channels") is not None:
        value, path = raw["channels"], "channels"
    elif raw.get("channel") is not None:
        value, path = [raw["channel"]], "channel"
    else:
        raise InvalidInput.field("channels", "Give `channel` or `channels` (an ordered fallback list).")
    if not isinstance(value, list) or not value or len(value) > len(Channel.values):
        raise InvalidInput.field(path, "A non-empty list of channels.")
    for channel in value:
        if channel not in Channel.values:
            raise InvalidInput.field(path, f"{channel!r} is not one of {', '.join(Channel.values)}.")
    if len(set(value)) != len(value):
        raise InvalidInput.field(path, "A channel is listed twice.")
    return value


def _content(raw: dict, channels: list[str]) -> dict:
    content = parsing.obj(raw, "content")
    errors = {}
    for channel in channels:
        fields = content.get(channel)
        if not isinstance(fields, dict):
            errors[f"content.{channel}"] = [f"Content for the {channel} channel is required."]
            continue
        for options in REQUIRED_CONTENT[channel]:
            if not any(fields.get(name) for name in options):
                errors[f"content.{channel}.{options[0]}"] = [
                    f"Required{' (or ' + ', '.join(options[1:]) + ')' if len(options) > 1 else ''}."]
        errors.update(rendering.inline_errors(channel, fields))
    if errors:
        raise InvalidInput("Invalid content.", fields=errors)
    return {channel: content[channel] for channel in channels}


def _choice(raw: dict, name: str, allowed: list[str], default: str) -> str:
    value = raw.get(name, default)
    if value not in allowed:
        raise InvalidInput.field(name, f"One of {', '.join(allowed)}.")
    return value
