"""Checking a send request: `POST /api/v1/messages`."""

import uuid
from dataclasses import dataclass

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


@dataclass
class SendRequest:
    external_id: str
    profile: dict | None
    message: Message  # unsaved: tenant, recipient and dedupe_key are filled in by the view


def parse_send(raw: dict, *, idempotency_key: str | None) -> SendRequest:
    errors: dict[str, list[str]] = {}

    def check(fn):
        try:
            return fn()
        except InvalidInput as exc:
            errors.update(exc.fields)

    recipient = check(lambda: parse_recipient(raw.get("recipient"), "recipient"))
    channels = check(lambda: _channels(raw))
    content = check(lambda: _content(raw, channels or []))
    priority = check(lambda: _choice(raw, "priority", Priority.values, Priority.NORMAL))
    category = check(lambda: parsing.string(raw, "category", max_length=64, default="general"))
    data = check(lambda: parsing.obj(raw, "data"))
    send_at = check(lambda: parsing.timestamp(raw, "send_at"))
    expires_at = check(lambda: parsing.timestamp(raw, "expires_at"))
    if raw.get("template") is not None:
        errors["template"] = ["Templates are not available yet; send `content` instead."]
    if errors:
        raise InvalidInput("Invalid message: " + "; ".join(errors), fields=errors)
    external_id, profile = recipient
    message = Message(
        channels=channels, content=content, priority=priority, category=category or "general",
        data=data, send_at=send_at, expires_at=expires_at, source=Message.Source.API,
        dedupe_key=f"api:{idempotency_key or uuid.uuid4().hex}:{external_id}",
    )
    return SendRequest(external_id=external_id, profile=profile, message=message)


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
    if errors:
        raise InvalidInput("Invalid content.", fields=errors)
    return {channel: content[channel] for channel in channels}


def _choice(raw: dict, name: str, allowed: list[str], default: str) -> str:
    value = raw.get(name, default)
    if value not in allowed:
        raise InvalidInput.field(name, f"One of {', '.join(allowed)}.")
    return value
