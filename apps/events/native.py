"""The native event API: `{"name", "recipient", "properties", "timestamp", "cancellation_key"}`."""

from dataclasses import dataclass

from apps.core import parsing
from apps.core.errors import InvalidInput
from apps.events.models import Event
from apps.events.services import EventDraft, events_record
from apps.recipients import services as recipients

MAX_BATCH = 1000


@dataclass
class NativeEvent:
    draft: EventDraft
    external_id: str
    profile: dict | None  # an inline recipient profile to upsert


def parse_event(raw, *, prefix: str = "") -> NativeEvent:
    if not isinstance(raw, dict):
        raise InvalidInput.field(prefix or "body", "Must be a JSON object.")
    errors: dict[str, list[str]] = {}
    values = {}
    checks = {
        "name": lambda: parsing.string(raw, "name", prefix, required=True, max_length=200),
        "properties": lambda: parsing.obj(raw, "properties", prefix),
        "timestamp": lambda: parsing.timestamp(raw, "timestamp", prefix),
        "cancellation_key": lambda: parsing.string(raw, "cancellation_key", prefix),
        "recipient": lambda: parse_recipient(raw.get("recipient"), parsing.path_of(prefix, "recipient")),
    }
    for name, check in checks.items():
        try:
            values[name] = check()
        except InvalidInput as exc:
            errors |= exc.fields
    if errors:
        raise InvalidInput("Invalid event: " + "; ".join(errors), fields=errors)
    external_id, profile = values["recipient"]
    draft = EventDraft(name=values["name"], recipient_id=None, properties=values["properties"],
                       timestamp=values["timestamp"], cancellation_key=values["cancellation_key"])
    return NativeEvent(draft=draft, external_id=external_id, profile=profile)


def parse_recipient(value, path: str) -> tuple[str, dict | None]:
    """An external id, or an inline profile object with `external_id` (upserted)."""
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
        return parsing.string({"recipient": value}, "recipient", path.rpartition(".")[0]), None
    if isinstance(value, dict):
        external_id = parsing.string(value, "external_id", path, required=True)
        return external_id, recipients.profile_validate(value, prefix=path)
    raise InvalidInput.field(path, "An external id, or a profile object with an external_id.")


def events_ingest(*, tenant, events: list[NativeEvent]) -> list[int]:
    """Upsert the inline profiles, then store the events; ids in order. Recipients named by
    external id alone are found (or created) as the events are stored."""
    # notify=False: the events' consumers re-evaluate segments for these recipients (off the request).
    profiled = {e.external_id for e in events if e.profile}
    ids = recipients.recipients_resolve_many(tenant=tenant, external_ids=profiled, notify=False)
    recipients.recipients_apply_profiles(
        tenant=tenant, profiles={ids[e.external_id]: e.profile for e in events if e.profile}, notify=False)
    for event in events:
        event.draft.recipient_id, event.draft.external_id = ids.get(event.external_id), event.external_id
    return events_record(tenant=tenant, source=Event.Source.API, drafts=[e.draft for e in events])

