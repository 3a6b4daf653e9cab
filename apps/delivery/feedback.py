"""What providers report about sent messages (deliveries, bounces, complaints, unsubscribes),
read from their webhook calls into one shape. Effects: apps.messaging.feedback.

ESPs (`sendgrid`, `postmark`, `anymail`): the ESP's own tracking-webhook payload, read by
django-anymail's parser for it (https://anymail.dev/en/stable/sending/tracking/). We call the
parser, not anymail's view: the caller is authenticated by the config's URL secret, and an
ESP's own signature is checked with the config's credentials (anymail would read settings).
Every other kind: the native format (docs/policy.md, "Bounces and complaints").
"""

import re
import warnings
from dataclasses import dataclass
from datetime import datetime

from anymail.exceptions import AnymailConfigurationError, AnymailError, AnymailWebhookValidationFailure
from anymail.signals import EventType, RejectReason
from django.utils.dateparse import parse_datetime
from django.utils.module_loading import import_string

from apps.core import parsing
from apps.core.errors import InvalidInput
from apps.delivery.models import ProviderConfig

KINDS = ("delivered", "bounced", "soft_bounced", "complained", "unsubscribed", "failed")
# anymail's tracking view per ESP (Mandrill's handles tracking and inbound in one).
VIEWS = {
    "brevo": "brevo.BrevoTrackingWebhookView", "mailersend": "mailersend.MailerSendTrackingWebhookView",
    "mailgun": "mailgun.MailgunTrackingWebhookView", "mailjet": "mailjet.MailjetTrackingWebhookView",
    "mailtrap": "mailtrap.MailtrapTrackingWebhookView", "mandrill": "mandrill.MandrillCombinedWebhookView",
    "postal": "postal.PostalTrackingWebhookView", "postmark": "postmark.PostmarkTrackingWebhookView",
    "resend": "resend.ResendTrackingWebhookView", "sendgrid": "sendgrid.SendGridTrackingWebhookView",
    "sparkpost": "sparkpost.SparkPostTrackingWebhookView",
    "unisender_go": "unisender_go.UnisenderGoTrackingWebhookView",
}
# Credentials holding an ESP's key for signing its webhooks, under anymail's names. When the
# config has one, the signature is checked; Mailgun, MailerSend, Postal, Unisender Go and
# Mandrill always sign, so anymail needs theirs (Mailgun's falls back to the api_key).
SIGNING_KEYS = {
    "mailgun": ("webhook_signing_key", "api_key"), "mailersend": ("signing_secret",),
    "mailtrap": ("signing_secret",), "mandrill": ("webhook_key",), "postal": ("webhook_key",),
    "resend": ("signing_secret",), "sendgrid": ("tracking_webhook_verification_key",),
    "unisender_go": ("api_key",),
}
KIND_OF = {EventType.DELIVERED: "delivered", EventType.BOUNCED: "bounced", EventType.DEFERRED: "soft_bounced",
           EventType.COMPLAINED: "complained", EventType.UNSUBSCRIBED: "unsubscribed",
           EventType.FAILED: "failed"}
# Refused by the ESP (e.g. SendGrid's "dropped"), by anymail's reason.
REJECTED = {RejectReason.BOUNCED: "bounced", RejectReason.INVALID: "bounced", RejectReason.SPAM: "complained",
            RejectReason.UNSUBSCRIBED: "unsubscribed"}
# Bounces anymail reads as `bounced` that say nothing final about the address, by ESP: Postmark's
# `Type` SoftBounce and VirusNotification (its Transient and DnsError are `deferred` already;
# https://postmarkapp.com/developer/api/bounce-api#bounce-types), SendGrid's bounce `type`
# "blocked" (https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/event).
SOFT = {"postmark": ("Type", {"SoftBounce", "VirusNotification"}), "sendgrid": ("type", {"blocked"})}
# Our own Message-ID (<msg-42@domain>) or idempotency key (msg-42): the message's id.
OUR_ID = re.compile(r"^<?msg-(\d+)(?:@[^>]*>?)?$")


@dataclass(frozen=True)
class ProviderEvent:
    kind: str  # one of KINDS, or "other" (opens, clicks…: nothing to do)
    address: str
    message_ids: tuple[str, ...]  # ids the report names the message by, ours or the provider's
    event_id: str = ""
    description: str = ""
    occurred_at: datetime | None = None

    def our_message_pk(self) -> int | None:
        for value in self.message_ids:
            found = OUR_ID.match(value)
            if found:
                return int(found.group(1))
        return None


def esp_of(config: ProviderConfig) -> str | None:
    if config.kind == "anymail":
        return config.settings.get("esp")
    return config.kind if config.kind in VIEWS else None


def events_parse(*, config: ProviderConfig, request) -> list[ProviderEvent]:
    """The events in a provider's webhook call; InvalidInput naming the problem if it cannot be
    read (a 400 for the caller, never a 500)."""
    esp = esp_of(config)
    if esp is None and config.kind in ("sendgrid", "postmark", "anymail"):
        raise InvalidInput.field("settings", f"{config.name} names no ESP whose webhooks we read.")
    try:
        return _esp_events(config, esp, request) if esp else _native_events(request.body)
    except InvalidInput:
        raise
    except AnymailWebhookValidationFailure as error:
        raise InvalidInput.field("signature", str(error)) from None
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError, AnymailError,
            AnymailConfigurationError) as error:  # e.g. Postmark's inbound webhook set to this URL
        problem = f"missing {error}" if isinstance(error, KeyError) else str(error) or type(error).__name__
        raise InvalidInput.field("body", f"Not a {esp or 'native'} event payload: {problem}") from None


def _esp_events(config: ProviderConfig, esp: str, request) -> list[ProviderEvent]:
    if esp not in VIEWS:
        raise InvalidInput.field("settings", f"anymail has no tracking webhook for {esp}.")
    credentials = config.credentials
    keys = {k: credentials[k] for k in SIGNING_KEYS.get(esp, ()) if credentials.get(k)}
    # Silenced: "insecure" (no basic auth: the URL secret stands in) and SendGrid's support notice.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            view = import_string(f"anymail.webhooks.{VIEWS[esp]}")(webhook_secret=[], **keys)
        except (AnymailConfigurationError, ValueError, TypeError):  # missing, or not a key (PEM)
            needed = " or ".join(SIGNING_KEYS.get(esp, ("its webhook signing key",)))
            raise InvalidInput.field(
                "credentials", f"{config.name} needs a valid {needed} in its credentials to check "
                               f"{esp}'s webhook signatures.") from None
    if keys:
        view.run_validators(request)
    return [_from_anymail(esp, event) for event in view.parse_events(request)]


def _from_anymail(esp: str, event) -> ProviderEvent:
    raw = event.esp_event if isinstance(event.esp_event, dict) else {}
    kind = KIND_OF.get(event.event_type, "other")
    if kind == "bounced" and esp in SOFT and raw.get(SOFT[esp][0]) in SOFT[esp][1]:
        kind = "soft_bounced"
    if event.event_type == EventType.REJECTED:  # the ESP refused to send it; why decides the rest
        kind = REJECTED.get(event.reject_reason, "failed")
    ids = (event.message_id, raw.get("smtp-id"))  # SendGrid passes our Message-ID as smtp-id
    return ProviderEvent(
        kind=kind, address=(event.recipient or "").strip(),
        message_ids=tuple(str(i) for i in ids if i), event_id=str(event.event_id or ""),
        description=str(event.description or event.mta_response or event.reject_reason or event.event_type),
        occurred_at=event.timestamp)


def _native_events(body: bytes) -> list[ProviderEvent]:
    """{"events": [{"type": one of KINDS, "message_id": "…", "address": "…", "id": "…",
    "reason": "…", "occurred_at": ISO 8601}]}: message_id (our Message-ID, msg-<id>, or the
    provider's id) or address is required."""
    try:
        data = parsing.json_loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidInput.field("body", f"Not JSON we accept: {error}.") from None
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise InvalidInput.field("events", "Required: a list of events.")
    return [_native_event(item, f"events[{index}]") for index, item in enumerate(data["events"])]


def _native_event(item, path: str) -> ProviderEvent:
    if not isinstance(item, dict):
        raise InvalidInput.field(path, "An object.")
    if item.get("type") not in KINDS:
        raise InvalidInput.field(f"{path}.type", f"One of {', '.join(KINDS)}.")
    strings = {}
    for name in ("message_id", "address", "id", "reason", "occurred_at"):
        value = item.get(name, "")
        if not isinstance(value, str) or len(value) > 1000:
            raise InvalidInput.field(f"{path}.{name}", "A string (at most 1,000 characters).")
        strings[name] = value.strip()
    if not strings["message_id"] and not strings["address"]:
        raise InvalidInput.field(f"{path}.message_id", "Give message_id, address or both.")
    occurred_at = None
    if strings["occurred_at"]:
        occurred_at = parse_datetime(strings["occurred_at"])
        if occurred_at is None or occurred_at.tzinfo is None:
            raise InvalidInput.field(f"{path}.occurred_at", "An ISO 8601 time with its offset.")
    return ProviderEvent(kind=item["type"], address=strings["address"],
                         message_ids=(strings["message_id"],) if strings["message_id"] else (),
                         event_id=strings["id"], description=strings["reason"] or item["type"],
                         occurred_at=occurred_at)
