"""Policy applied to a batch of claimed messages (called by apps.messaging.pipeline), and writes
to preferences and the suppression list."""

from datetime import timedelta

from django.db import transaction
from django.db.models import Count, Min, Q

from apps.core import clock
from apps.messaging.models import Channel, Message, Status
from apps.messaging.services import message_transition
from apps.policy import evaluation
from apps.policy.links import absolute_url, link_token, unsubscribe_headers
from apps.policy.models import Category, Kind, PolicySettings, Preference, SuppressedAddress
from apps.policy.selectors import PolicyLookup, TenantPolicy, preferences_for_many, suppressed_for_many
from apps.recipients.models import Recipient

WINDOWS = {"day": timedelta(days=1), "week": timedelta(days=7)}
# What takes a slot under a cap. `sent_at` is stamped when a message passes the cap check (before
# the provider call), so a message still being sent counts; a failed one no longer does.
COUNTED = [Status.SENDING, Status.SENT, Status.DELIVERED]


class PolicyBatch:
    """What policy needs for one batch of messages, read once: each tenant's policy (cached),
    the recipients' preferences and the batch's addresses on the suppression list."""

    def __init__(self, messages: list[Message], address_of):
        lookup = PolicyLookup()
        self.tenants = {m.tenant_id: lookup(tenant=m.tenant) for m in messages}
        self.preferences = preferences_for_many(recipient_ids=[m.recipient_id for m in messages])
        self.suppressed = suppressed_for_many(pairs={
            (m.tenant_id, channel, address_of[channel](m.recipient))
            for m in messages for channel in m.channels})
        self.address_of = address_of

    def category(self, message: Message) -> Category:
        known = self.tenants[message.tenant_id].category(message.category)
        # A category deleted after the message was accepted: plain defaults, never a crash.
        return known or Category(key=message.category, name=message.category, kind=Kind.PRODUCT)

    def channel_blocked(self, message: Message, channel: str) -> evaluation.PolicyReason | None:
        address = self.address_of[channel](message.recipient)
        return evaluation.channel_blocked(
            category=self.category(message), channel=channel,
            suppressed=(message.tenant_id, channel, address) in self.suppressed,
            preference=self.preferences.get(message.recipient_id))

    def links(self, message: Message, channel: str) -> tuple[dict[str, str], dict[str, str]]:
        """The template's `message.unsubscribe_url` / `preferences_url`, and the headers: RFC 8058
        one-click unsubscribe on every commercial email (never on other kinds)."""
        token = link_token(recipient=message.recipient)
        urls = {"unsubscribe_url": absolute_url("policy-unsubscribe", token),
                "preferences_url": absolute_url("policy-preferences", token)}
        commercial = channel == Channel.EMAIL and self.category(message).kind == Kind.COMMERCIAL
        return urls, unsubscribe_headers(url=urls["unsubscribe_url"]) if commercial else {}

    def timing(self, message: Message) -> str | None:
        """Quiet hours, then caps. None: send now. Otherwise the message has been moved
        (scheduled or suppressed) with the reason in its timeline, and its new status is returned."""
        policy = self.tenants[message.tenant_id]
        category = self.category(message)
        deferred = self._quiet_hours(message, policy, category)
        if deferred is not None:
            return deferred
        settings = policy.settings
        if settings is None or (settings.cap_per_day is None and settings.cap_per_week is None):
            return None
        if evaluation.bypasses_caps(category=category, priority=message.priority,
                                    exempt_transactional=settings.caps_exempt_transactional):
            return None
        return _cap_check(message, policy, settings)

    def _quiet_hours(self, message: Message, policy: TenantPolicy, category: Category) -> str | None:
        preference = self.preferences.get(message.recipient_id)
        own = preference is not None and preference.quiet_start is not None
        source = preference if own else policy.settings
        if source is None or source.quiet_start is None or source.quiet_end is None:
            return None
        if evaluation.bypasses_quiet_hours(category=category, priority=message.priority):
            return None
        timezone = message.recipient.timezone or policy.timezone
        until = evaluation.quiet_hours_end(now=clock.now(), start=source.quiet_start,
                                           end=source.quiet_end, timezone=timezone)
        if until is None:
            return None
        words = evaluation.local_time_words(until, timezone)
        _defer(message, until, reason_code="quiet_hours", reason=f"deferred: quiet hours until {words}",
               detail={"until": until.isoformat(), "timezone": timezone,
                       "by": "recipient" if source is preference else "tenant"})
        return Status.SCHEDULED


def _cap_check(message: Message, policy: TenantPolicy, settings: PolicySettings) -> str | None:
    """Under the recipient's row lock: count the messages that hold a slot in each window, and
    either take a slot (stamp sent_at) or defer/drop. Two workers deciding for one recipient are
    serialised by the lock, and the first one's stamp is what the second one counts."""
    now = clock.now()
    caps = {"day": settings.cap_per_day, "week": settings.cap_per_week}
    longest = max(WINDOWS[w] for w, cap in caps.items() if cap is not None)
    exempt = ([key for key, c in policy.categories.items() if c.kind == Kind.TRANSACTIONAL]
              if settings.caps_exempt_transactional else [])
    with transaction.atomic():
        list(Recipient.objects.select_for_update().filter(pk=message.recipient_id).values_list("pk"))
        rows = (Message.objects.filter(tenant_id=message.tenant_id, recipient_id=message.recipient_id,
                                       sent_at__gt=now - longest, status__in=COUNTED)
                .exclude(pk=message.pk).exclude(category__in=exempt))
        found = rows.aggregate(**{
            agg: fn("sent_at", filter=Q(sent_at__gt=now - WINDOWS[w]))
            for w in WINDOWS for agg, fn in ((w, Count), (f"{w}_first", Min))})
        window = evaluation.cap_hit(counts=found, caps=caps)
        if window is None:
            Message.objects.filter(pk=message.pk).update(sent_at=now)
            return None
    cap = f"{caps[window]} per {window}"
    if settings.cap_action == PolicySettings.CapAction.DROP:
        message_transition(message=message, to=Status.SUPPRESSED, reason_code="frequency_cap",
                           reason=f"suppressed: frequency cap of {cap} reached",
                           detail={"window": window, "cap": caps[window], "count": found[window]})
        return Status.SUPPRESSED
    until = found[f"{window}_first"] + WINDOWS[window]
    timezone = message.recipient.timezone or policy.timezone
    words = evaluation.local_time_words(until, timezone)
    _defer(message, until, reason_code="frequency_cap",
           reason=f"deferred: frequency cap of {cap} reached until {words}",
           detail={"window": window, "cap": caps[window], "count": found[window], "until": until.isoformat()})
    return Status.SCHEDULED


def _defer(message: Message, until, *, reason_code: str, reason: str, detail: dict) -> None:
    """Back to `scheduled`, due at `until` (messages_release_due re-queues it, and the policy
    decides again). The claim that brought it here does not count as an attempt."""
    message_transition(message=message, to=Status.SCHEDULED, reason_code=reason_code, reason=reason,
                       detail=detail, next_attempt_at=until, attempts=max(message.attempts - 1, 0))


def preference_get(*, recipient: Recipient) -> Preference:
    """The recipient's preferences (an unsaved default row when they have set none)."""
    found = Preference.objects.filter(tenant_id=recipient.tenant_id, recipient=recipient).first()
    return found or Preference(tenant_id=recipient.tenant_id, recipient=recipient)


def preference_save(*, preference: Preference) -> Preference:
    preference.full_clean(exclude=["tenant", "recipient"])
    preference.save()
    return preference


def address_suppress(*, tenant, channel: str, address: str, source: str, reason: str = "") -> None:
    """Add an address to the tenant's suppression list (no-op if it is already there)."""
    SuppressedAddress.objects.get_or_create(tenant=tenant, channel=channel, address=address,
                                            defaults={"source": source, "reason": reason})
