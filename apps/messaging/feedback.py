"""What a provider reports about sent messages (read by apps.delivery.feedback) → each message's
timeline and status, and the tenant's suppression list (docs/policy.md, "Bounces and complaints")."""

from django.db import transaction

from apps.delivery.feedback import ProviderEvent
from apps.delivery.models import ProviderConfig
from apps.messaging.models import TRANSITIONS, Message, Status
from apps.messaging.services import message_note, message_transition
from apps.policy.models import SuppressedAddress
from apps.policy.services import address_suppress
from apps.tenants.selectors import tenant_descendant_ids

# What puts the address on the suppression list; a soft bounce never does.
SUPPRESS = {"bounced": SuppressedAddress.Source.BOUNCE, "complained": SuppressedAddress.Source.COMPLAINT,
            "unsubscribed": SuppressedAddress.Source.UNSUBSCRIBE}
# The status a report moves the message to, where TRANSITIONS allow; other reports are notes.
MOVES = {"delivered": Status.DELIVERED, "bounced": Status.BOUNCED, "failed": Status.FAILED}
WORDS = {"delivered": "delivered", "bounced": "bounced", "soft_bounced": "soft bounce (not final)",
         "complained": "spam complaint", "unsubscribed": "unsubscribed at the provider",
         "failed": "failed at the provider"}


def provider_events_apply(*, config: ProviderConfig, events: list[ProviderEvent]) -> dict[str, int]:
    """Apply one webhook call's events; counts for the response. A message is found by our id
    in the report (msg-<id>) or by the id the provider gave it, among the messages of the
    config's tenant and its sub-tenants (which inherit the config). An address goes on the list
    of the message's tenant, or of the config's when the report names no message of ours.
    Reports sent again (same event id) change nothing."""
    acted = [event for event in events if event.kind in WORDS]
    found = _messages(acted, tenant_descendant_ids(tenant_ids=[config.tenant_id]))
    counts = {"received": len(events), "matched": 0, "suppressed": 0}
    for event in acted:
        message = found.get(event.our_message_pk()) or next(
            (found[i] for i in event.message_ids if i in found), None)
        with transaction.atomic():
            address = event.address or (message.rendered.get("to", "") if message else "")
            if event.kind in SUPPRESS and address:
                counts["suppressed"] += address_suppress(
                    tenant_id=message.tenant_id if message else config.tenant_id, channel=config.channel,
                    address=address, source=SUPPRESS[event.kind],
                    reason=f"{WORDS[event.kind]}: {event.description}"[:200])
            if message is not None:
                counts["matched"] += 1
                _record(message, event, config)
    return counts


def _messages(events: list[ProviderEvent], tenant_ids: set[int]) -> dict:
    """Our id → message and provider message id → message, for the messages the events name."""
    ours = {pk for event in events if (pk := event.our_message_pk()) is not None}
    theirs = {i for event in events for i in event.message_ids}
    scoped = Message.objects.filter(tenant_id__in=tenant_ids)
    found = {m.pk: m for m in scoped.filter(pk__in=ours)} if ours else {}
    if theirs:
        found |= {m.provider_message_id: m for m in scoped.filter(provider_message_id__in=theirs)}
    return found


def _record(message: Message, event: ProviderEvent, config: ProviderConfig) -> None:
    reason_code = f"provider_{event.kind}"
    if event.event_id and message.timeline.filter(reason_code=reason_code,
                                                  detail__event_id=event.event_id).exists():
        return
    reason = f"{WORDS[event.kind]}: {event.description} (reported by {config.name})"
    detail = {"event_id": event.event_id, "address": event.address, "provider": config.name,
              "occurred_at": event.occurred_at.isoformat() if event.occurred_at else None}
    to = MOVES.get(event.kind)
    if to in TRANSITIONS.get(message.status, set()):
        if message_transition(message=message, to=to, reason_code=reason_code, reason=reason, detail=detail):
            return
        message.refresh_from_db(fields=["status"])  # another process moved it first
    message_note(message=message, status=message.status, reason_code=reason_code, reason=reason,
                 detail=detail)
