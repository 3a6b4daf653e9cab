"""The Segment HTTP tracking spec: identify, track, page, screen, group, alias — one or a batch.

https://segment.com/docs/connections/sources/catalog/libraries/server/http-api/
Recipients are found by `userId` (their external_id) or `anonymousId` (an alias); an identify
or alias that names both links them, merging the anonymous profile into the known one.
"""

from dataclasses import dataclass, field

from apps.core import parsing
from apps.core.errors import InvalidInput
from apps.events.models import Event
from apps.events.services import EventDraft, events_record
from apps.recipients import services as recipients
from apps.recipients.models import Recipient
from apps.recipients.services import recipients_apply_profiles

MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
TYPES = {k.value for k in Event.Kind}


@dataclass
class Call:
    """One Segment call, checked."""

    kind: str
    user_id: str
    anonymous_id: str
    draft: EventDraft
    traits: dict = field(default_factory=dict)
    previous_id: str = ""


def parse_call(raw, *, prefix: str, kind: str | None = None, sent_at=None) -> Call:
    if not isinstance(raw, dict):
        raise InvalidInput.field(prefix or "body", "Must be a JSON object.")
    kind = kind or parsing.string(raw, "type", prefix, required=True, max_length=10)
    if kind not in TYPES:
        raise InvalidInput.field(parsing.path_of(prefix, "type"), f"Must be one of {sorted(TYPES)}.")
    user_id = parsing.string(raw, "userId", prefix)
    anonymous_id = parsing.string(raw, "anonymousId", prefix)
    if not user_id and not anonymous_id:
        raise InvalidInput.field(parsing.path_of(prefix, "userId"), "userId or anonymousId is required.")
    properties = parsing.obj(raw, "properties", prefix)
    traits = parsing.obj(raw, "traits", prefix) or parsing.obj(parsing.obj(raw, "context", prefix), "traits")
    if kind == Event.Kind.TRACK:
        name = parsing.string(raw, "event", prefix, required=True, max_length=200)
    elif kind in (Event.Kind.PAGE, Event.Kind.SCREEN):
        name = kind
        page_name = parsing.string(raw, "name", prefix, max_length=200)
        properties = {**properties, **({"name": page_name} if page_name else {})}
    elif kind == Event.Kind.GROUP:
        name = kind
        properties = {**properties, "group_id": parsing.string(raw, "groupId", prefix, required=True),
                      "traits": traits}
    else:
        name = kind
    previous_id = parsing.string(raw, "previousId", prefix, required=kind == Event.Kind.ALIAS)
    timestamp = parsing.timestamp(raw, "timestamp", prefix) or parsing.timestamp(
        raw, "originalTimestamp", prefix)
    draft = EventDraft(
        name=name, recipient_id=None, kind=kind, properties=properties,
        context=parsing.obj(raw, "context", prefix),
        message_id=parsing.string(raw, "messageId", prefix),
        timestamp=timestamp, sent_at=parsing.timestamp(raw, "sentAt", prefix) or sent_at,
    )
    return Call(kind=kind, user_id=user_id, anonymous_id=anonymous_id, draft=draft,
                traits=traits if kind == Event.Kind.IDENTIFY else {}, previous_id=previous_id)


def _profile_from(call: Call) -> dict:
    """identify traits → profile: email/phone into the fields, the rest into attributes.
    A trait that fails validation is kept as an attribute rather than failing the event."""
    context = call.draft.context
    raw = {name: call.traits[name] for name in ("email", "phone") if name in call.traits}
    for name in ("timezone", "locale"):
        if isinstance(context.get(name), str):
            raw[name] = context[name]
    attributes = {k: v for k, v in call.traits.items() if k not in ("email", "phone")}
    profile = {}
    for name, value in raw.items():
        try:
            profile |= recipients.profile_validate({name: value})
        except InvalidInput:
            attributes[name] = value
    if attributes:
        profile["attributes"] = attributes
    return profile


def segment_ingest(*, tenant, calls: list[Call]) -> None:
    """Resolve the recipients that identify, alias and anonymousId links need (a few queries for
    the lot), link aliases, apply identify profiles, and record the events (which find the other
    calls' recipients by userId themselves)."""
    # notify=False: the events' consumers re-evaluate segments for these recipients (off the request).
    early = {c.user_id for c in calls
             if c.user_id and (c.anonymous_id or c.kind in (Event.Kind.IDENTIFY, Event.Kind.ALIAS))}
    by_user = recipients.recipients_resolve_many(tenant=tenant, external_ids=early, notify=False)
    by_alias = recipients.aliases_resolve_many(
        tenant=tenant, aliases={c.anonymous_id for c in calls if c.anonymous_id and not c.user_id},
        notify=False)
    links = {}
    for call in calls:
        if call.user_id:
            call.draft.recipient_id, call.draft.external_id = by_user.get(call.user_id), call.user_id
            if call.anonymous_id:
                links[call.anonymous_id] = call.draft.recipient_id
        else:
            call.draft.recipient_id = by_alias[call.anonymous_id]
    recipients.aliases_link_many(tenant=tenant, links=links)
    for call in calls:
        if call.kind == Event.Kind.ALIAS:
            _alias(tenant, call)
    _apply_profiles(tenant, calls)
    events_record(tenant=tenant, source=Event.Source.SEGMENT, drafts=[c.draft for c in calls])


def _alias(tenant, call: Call) -> None:
    """alias(previousId → userId): the previous id, a user id or an anonymous id, joins userId."""
    previous = Recipient.objects.filter(tenant=tenant, external_id=call.previous_id).first()
    if previous is not None and previous.pk != call.draft.recipient_id:
        target = Recipient.objects.get(tenant=tenant, pk=call.draft.recipient_id)
        recipients.recipient_merge(source=previous, target=target)
    elif previous is None:
        recipients.recipient_link_alias(
            tenant=tenant, alias=call.previous_id, recipient_id=call.draft.recipient_id)


def _apply_profiles(tenant, calls: list[Call]) -> None:
    profiles: dict[int, list[dict]] = {}
    for call in calls:
        if call.kind == Event.Kind.IDENTIFY:
            profiles.setdefault(call.draft.recipient_id, []).append(_profile_from(call))
    merged = {}
    for recipient_id, updates in profiles.items():
        profile = {}
        for update in updates:  # later calls win; attributes accumulate
            profile |= {k: v for k, v in update.items() if k != "attributes"}
            profile["attributes"] = {**profile.get("attributes", {}), **update.get("attributes", {})}
        merged[recipient_id] = profile
    recipients_apply_profiles(tenant=tenant, profiles=merged, notify=False)
