"""Policy applied to a batch of claimed messages (called by apps.messaging.pipeline), and writes
to preferences and the suppression list."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, Exists, Max, Min, OuterRef, Q
from django.db.models.functions import Coalesce

from apps.core import clock
from apps.messaging.models import Channel, Message, Status
from apps.messaging.services import message_transition
from apps.policy import evaluation
from apps.policy.links import absolute_url, link_token, unsubscribe_headers
from apps.policy.models import (
    Cap,
    Category,
    FlagRule,
    Kind,
    Preference,
    RecipientFlag,
    SuppressedAddress,
    SuppressionRule,
)
from apps.policy.selectors import (
    PolicyLookup,
    TenantPolicy,
    flags_for_many,
    preferences_and_suppressed_for_many,
)
from apps.recipients.models import Recipient
from apps.tenants.selectors import tenant_get_cached

WINDOWS = {"day": timedelta(days=1), "week": timedelta(days=7)}
# A message held by a flag without an expiry is decided again this often (the flag may be cleared).
FLAG_RECHECK = timedelta(minutes=15)
# What takes a slot under a cap. `sent_at` is stamped when a message passes the cap check (before
# the provider call), so a message still being sent counts; a failed one no longer does.
COUNTED = [Status.SENDING, Status.SENT, Status.DELIVERED]


class PolicyBatch:
    """What policy needs for one batch of messages, read once: each tenant's policy (cached),
    the recipients' preferences and the batch's addresses on the suppression list."""

    def __init__(self, messages: list[Message], address_of):
        lookup = PolicyLookup()
        self.tenants = {m.tenant_id: lookup(tenant=m.tenant) for m in messages}
        self.preferences, self.suppressed = preferences_and_suppressed_for_many(
            recipient_ids=[m.recipient_id for m in messages],
            pairs={(m.tenant_id, channel, address_of[channel](m.recipient))
                   for m in messages for channel in m.channels})
        self.address_of = address_of
        self.flags = (flags_for_many(recipient_ids=[m.recipient_id for m in messages], now=clock.now())
                      if any(p.flag_rules for p in self.tenants.values()) else {})

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

    def timing(self, message: Message, channel: str) -> str | None:
        """Quiet hours, flags, suppression rules, then caps, for `message` routed to `channel`.
        None: send now. Otherwise the message has been moved (scheduled or suppressed) with the
        reason in its timeline, and its new status is returned."""
        policy = self.tenants[message.tenant_id]
        category = self.category(message)
        held = self._quiet_hours(message, policy, category) or self._flags(message, policy, category)
        if held is not None:
            return held
        rules = [r for r in policy.rules
                 if evaluation.rule_applies(rule=r, category=category, priority=message.priority)]
        caps = [c for c in policy.caps if evaluation.cap_applies(
            cap=c, category=category, channel=channel, priority=message.priority,
            exempt_transactional=policy.caps_exempt_transactional)]
        if not rules and not caps:
            return None  # no query at all
        return _locked_checks(message, policy, category, rules, caps, channel)

    def _flags(self, message: Message, policy: TenantPolicy, category: Category) -> str | None:
        """A flag rule holding this category while a flag is set on the recipient."""
        if message.priority == "critical":
            return None
        flags = self.flags.get(message.recipient_id, {})
        for rule in policy.flag_rules:
            flag = flags.get(rule.flag)
            if flag is None or category.key not in rule.categories:
                continue
            detail = {"flag_rule": rule.pk, "flag": rule.flag, "set_at": flag.set_at.isoformat()}
            if rule.action == FlagRule.Action.SUPPRESS:
                message_transition(message=message, to=Status.SUPPRESSED, reason_code="flag",
                                   reason=f"suppressed: {category.key} is held while {rule.flag} is set",
                                   detail=detail)
                return Status.SUPPRESSED
            until = flag.expires_at or clock.now() + FLAG_RECHECK
            timezone = message.recipient.timezone or policy.timezone
            ends = "expires" if flag.expires_at else "is checked again"
            _defer(message, until, reason_code="flag", detail={**detail, "until": until.isoformat()},
                   reason=f"deferred: {category.key} is held while {rule.flag} is set; it {ends} at "
                          f"{evaluation.local_time_words(until, timezone)}")
            return Status.SCHEDULED
        return None

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


def _locked_checks(message: Message, policy: TenantPolicy, category: Category,
                   rules: list[SuppressionRule], caps: list[Cap], channel: str) -> str | None:
    """Suppression rules, then caps, under the recipient's row lock (SELECT … FOR UPDATE): two
    workers deciding for one recipient are serialised, and a message that passes takes its slot
    at once (sent_at and its channel are stamped), so the second one counts it. Rules and caps are
    answered by one aggregate over the recipient's recent messages (index on tenant, recipient,
    sent_at), a FILTERed COUNT and MIN per cap."""
    now = clock.now()
    spec = _aggregates(policy, rules, caps, now)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            found = _recent_locked_pg(message, spec)
        else:
            list(Recipient.objects.select_for_update().filter(pk=message.recipient_id).values_list("pk"))
            found = _recent_orm(_history(message), spec)
        rule, trigger_at = _first_rule_hit(rules, found, now)
        verdict = None if rule is not None else evaluation.cap_verdict(
            reached=[(cap, found[f"{_cap_name(cap)}:first"] + WINDOWS[cap.period])
                     for cap in caps if found[_cap_name(cap)] >= cap.limit],
            priority=message.priority)
        if rule is None and verdict is None:
            # Takes its slot; the channel too, so that channel caps count it while it is sent.
            # Plain SQL: on this path for every capped message, and the ORM's building of the
            # UPDATE costs more than running it (bench/policy.py).
            with connection.cursor() as cursor:
                cursor.execute(f"UPDATE {Message._meta.db_table} SET sent_at = %s, channel = %s "  # noqa: S608
                               "WHERE id = %s", [now, channel, message.pk])
            return None
    if rule is not None:
        trigger = (_history(message).filter(category__in=rule.after_categories, sent_at=trigger_at)
                   .values("id", "category", "sent_at").first())  # only to name it: the rare path
        return _rule_hit(message, category, rule, trigger)
    return _cap_hit(message, policy, found, *verdict)


def _history(message: Message):
    """The recipient's other messages that hold a slot."""
    return Message.objects.filter(tenant_id=message.tenant_id, recipient_id=message.recipient_id,
                                  status__in=COUNTED).exclude(pk=message.pk)


@dataclass(frozen=True)
class Aggregate:
    """One figure about the recipient's recent messages: COUNT, MIN or MAX of sent_at over those
    sent after `since` (if given) whose category is (or, with `exclude`, is not) in `categories`,
    and sent on `channel` if given."""

    name: str
    function: str
    since: datetime | None
    categories: list[str]
    exclude: bool
    channel: str | None = None


def _cap_name(cap: Cap) -> str:
    return f"cap:{cap.scope}:{cap.key}:{cap.period}"


def _aggregates(policy: TenantPolicy, rules: list[SuppressionRule], caps: list[Cap],
                now: datetime) -> tuple[list[Aggregate], datetime]:
    """Per cap the messages holding one of its slots and the oldest of them (caps counting the
    same messages share them); per trigger category of the rules the latest send; and how far
    back to look."""
    exempt = ([key for key, c in policy.categories.items() if c.kind == Kind.TRANSACTIONAL]
              if policy.caps_exempt_transactional else [])
    spec, spans = {}, [timedelta(minutes=r.window_minutes) for r in rules]
    for cap in caps:
        since, name = now - WINDOWS[cap.period], _cap_name(cap)
        counted = ([cap.key], False) if cap.scope == Cap.Scope.CATEGORY else (exempt, True)
        channel = cap.key if cap.scope == Cap.Scope.CHANNEL else None
        spec[name] = Aggregate(name, "COUNT", since, *counted, channel)
        spec[f"{name}:first"] = Aggregate(f"{name}:first", "MIN", since, *counted, channel)
        spans.append(WINDOWS[cap.period])
    for key in sorted({key for rule in rules for key in rule.after_categories}):
        spec[f"after:{key}"] = Aggregate(f"after:{key}", "MAX", None, [key], False)
    return list(spec.values()), now - max(spans)


def _recent_orm(history, spec: tuple[list[Aggregate], datetime]) -> dict:
    aggregates, since = spec
    functions = {"COUNT": Count, "MIN": Min, "MAX": Max}
    expressions = {}
    for index, a in enumerate(aggregates):  # aggregate() names must be identifiers: a0, a1, …
        where = Q(category__in=a.categories)
        where = ~where if a.exclude else where
        if a.since is not None:
            where &= Q(sent_at__gt=a.since)
        if a.channel is not None:
            where &= Q(channel=a.channel)
        expressions[f"a{index}"] = functions[a.function]("sent_at", filter=where)
    row = history.filter(sent_at__gt=since).aggregate(**expressions)
    return {a.name: row[f"a{index}"] for index, a in enumerate(aggregates)}


def _recent_locked_pg(message: Message, spec: tuple[list[Aggregate], datetime]) -> dict:
    """PostgreSQL, in plain SQL (the ORM's building of this aggregate costs more than running it:
    bench/policy.py): lock the recipient, then aggregate. Two statements, never one: a statement
    reads the snapshot taken when it started, so an aggregate in the statement that waited for
    the lock would miss what the previous holder committed (apps/policy/tests/test_cap_race.py
    catches it). Both are sent in one round trip, though: with client-side binding (Django's
    default for psycopg 3) they go as one simple query, whose statements each take their own
    snapshot (https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-MULTI-STATEMENT)."""
    aggregates, since = spec
    columns, params = [], []
    for a in aggregates:
        conditions = ["category <> ALL(%s)" if a.exclude else "category = ANY(%s)"]
        params.append(a.categories)
        if a.since is not None:
            conditions.append("sent_at > %s")
            params.append(a.since)
        if a.channel is not None:
            conditions.append("channel = %s")
            params.append(a.channel)
        columns.append(f"{a.function}(sent_at) FILTER (WHERE {' AND '.join(conditions)})")
    # Built from constants only (function names, table names); every value is a parameter.
    sql = (f"SELECT {', '.join(columns)} FROM {Message._meta.db_table} WHERE tenant_id = %s "  # noqa: S608
           "AND recipient_id = %s AND status = ANY(%s) AND id <> %s AND sent_at > %s")
    lock = f"SELECT id FROM {Recipient._meta.db_table} WHERE id = %s FOR UPDATE; "  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(lock + sql, [message.recipient_id, *params, message.tenant_id, message.recipient_id,
                                    [str(s) for s in COUNTED], message.pk, since])
        cursor.nextset()
        row = cursor.fetchone()
    return {a.name: value for a, value in zip(aggregates, row, strict=True)}


def _first_rule_hit(rules: list[SuppressionRule], found: dict, now) -> tuple[SuppressionRule | None, object]:
    """The first rule a recent send of one of its categories sets off, and that send's time."""
    for rule in rules:
        since = now - timedelta(minutes=rule.window_minutes)
        times = [found.get(f"after:{key}") for key in rule.after_categories]
        latest = max((t for t in times if t is not None and t > since), default=None)
        if latest is not None:
            return rule, latest
    return None, None


def _rule_hit(message: Message, category: Category, rule: SuppressionRule, trigger: dict) -> str:
    words = f"{category.kind} within {rule.window_words()} of {trigger['category']} message #{trigger['id']}"
    detail = {"rule": rule.pk, "rule_name": rule.name, "trigger": trigger["id"],
              "trigger_sent_at": trigger["sent_at"].isoformat()}
    if rule.action == SuppressionRule.Action.SUPPRESS:
        message_transition(message=message, to=Status.SUPPRESSED, reason_code="suppression_rule",
                           reason=f"suppressed: {words}", detail=detail)
        return Status.SUPPRESSED
    until = trigger["sent_at"] + timedelta(minutes=rule.window_minutes)
    _defer(message, until, reason_code="suppression_rule", reason=f"deferred: {words}",
           detail={**detail, "until": until.isoformat()})
    return Status.SCHEDULED


def _cap_hit(message: Message, policy: TenantPolicy, found: dict, cap: Cap, action: str,
             until: datetime) -> str:
    """Over `cap`: dropped, or deferred until its window has room, per its action for the
    message's priority."""
    detail = {"cap": cap.pk, "scope": cap.scope, "key": cap.key, "period": cap.period,
              "limit": cap.limit, "count": found[_cap_name(cap)], "priority": message.priority}
    if action == Cap.Action.DROP:
        message_transition(message=message, to=Status.SUPPRESSED, reason_code="frequency_cap",
                           reason=f"suppressed: frequency cap of {cap.words()} reached", detail=detail)
        return Status.SUPPRESSED
    words = evaluation.local_time_words(until, message.recipient.timezone or policy.timezone)
    _defer(message, until, reason_code="frequency_cap",
           reason=f"deferred: frequency cap of {cap.words()} reached until {words}",
           detail={**detail, "until": until.isoformat()})
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


def rule_dry_run(*, rule: SuppressionRule, sample: int = 1000) -> tuple[int, int]:
    """(N, M): the rule would have held N of the tenant's last M (≤ sample) messages: those of
    its kinds, not critical, sent (or created) within the window after a trigger message."""
    from apps.policy.selectors import tenant_policy_load

    policy = tenant_policy_load(tenant=rule.tenant)
    keys = [key for key, c in policy.categories.items() if c.kind in rule.kinds]
    recent = list(Message.objects.filter(tenant=rule.tenant).order_by("-id")
                  .values_list("id", flat=True)[:sample])
    at = Coalesce("sent_at", "created_at")
    triggers = Message.objects.filter(
        tenant=rule.tenant, recipient=OuterRef("recipient"), category__in=rule.after_categories,
        status__in=COUNTED + [Status.BOUNCED], sent_at__lt=OuterRef("at"),
        sent_at__gte=OuterRef("at") - timedelta(minutes=rule.window_minutes))
    held = (Message.objects.filter(pk__in=recent, category__in=keys).exclude(priority="critical")
            .annotate(at=at).filter(Exists(triggers)).count())
    return held, len(recent)


def flags_from_events(*, events) -> None:
    """Event consumer (SIGNALBOX_EVENT_CONSUMERS): events named by a flag rule set or clear the
    flag on their recipient. Runs inside events_process's transaction."""
    lookup = PolicyLookup()
    for event in events:
        if event.recipient_id is None:
            continue
        for rule in lookup(tenant=tenant_get_cached(tenant_id=event.tenant_id)).flag_rules:
            if event.name == rule.set_by_event:
                expires = (event.occurred_at + timedelta(minutes=rule.expires_after_minutes)
                           if rule.expires_after_minutes else None)
                RecipientFlag.objects.update_or_create(
                    tenant_id=event.tenant_id, recipient_id=event.recipient_id, flag=rule.flag,
                    defaults={"set_at": event.occurred_at, "expires_at": expires})
            elif event.name == rule.cleared_by_event:
                RecipientFlag.objects.filter(tenant_id=event.tenant_id, recipient_id=event.recipient_id,
                                             flag=rule.flag).delete()
