"""Policy applied to a batch of claimed messages (called by apps.messaging.pipeline), and writes
to preferences and the suppression list."""

from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache, partial

from django.db import connection, transaction
from django.db.models import Exists, Min, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce

from apps.core import clock
from apps.core.postgresql import prepared
from apps.messaging.models import HOLDS_SLOT, TRANSITIONS, Channel, Message, Status, StatusEvent
from apps.messaging.services import enqueue_sends, message_transition
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
    BatchReads,
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
COUNTED = HOLDS_SLOT  # the statuses of the index the count runs on (message_slots)
SLOTS_INDEX = "message_slots"
GENERIC_PLAN = "SET LOCAL plan_cache_mode = force_generic_plan"


class PolicyBatch:
    """What policy needs for one batch of messages, read once: each tenant's policy (cached),
    the recipients' preferences and the batch's addresses on the suppression list.

    On PostgreSQL, when the tenants' cached policies have rules or caps (so timing will lock the
    recipients), those reads go in the lock's round trip: the recipients are locked and their
    recent messages counted here, and timing_many decides, stamps and commits (two round trips
    for the batch's policy instead of three). The caller must then close() the batch if it does
    not reach timing_many (the pipeline does, in a finally), which rolls that transaction back."""

    def __init__(self, messages: list[Message], address_of):
        recipient_ids = [m.recipient_id for m in messages]
        pairs = {(m.tenant_id, channel, address_of[channel](m.recipient))
                 for m in messages for channel in m.channels}
        self._early = _early_recent(messages)  # the lock's count, when taken now
        if self._early is None:
            self.preferences, self.suppressed, version = preferences_and_suppressed_for_many(
                recipient_ids=recipient_ids, pairs=pairs)
        else:
            reads = BatchReads(recipient_ids=recipient_ids, pairs=pairs)
            with _rolled_back_on_error() as cursor:
                prepared.prepare(cursor, [_LOCK, _STAMP, *BatchReads.QUERIES])  # a connection's first batch
                sql, params = self._early.statement(cursor)
                reads_sql, reads_params = reads.statement(cursor)
                _lock_open(cursor, recipient_ids, f"{sql}; {reads_sql}", [*params, *reads_params])
                self._early.rows = cursor.fetchall()
                cursor.nextset()
                self.preferences, self.suppressed, version = reads.load(cursor)
        try:
            lookup = PolicyLookup(version)
            self.tenants = {m.tenant_id: lookup(tenant=m.tenant) for m in messages}
            if self._early is not None and any(self.tenants[pk] is not policy
                                               for pk, policy in self._early.policies.items()):
                # Edited since this process cached it: count again for the policy now, still locked.
                self._early = _Recent.for_batch(messages, self.tenants, self._early.now)
                with _rolled_back_on_error() as cursor:
                    cursor.execute(*self._early.statement(cursor))
                    self._early.rows = cursor.fetchall()
            self.address_of = address_of
            self.flags = (flags_for_many(recipient_ids=recipient_ids, now=clock.now())
                          if any(p.flag_rules for p in self.tenants.values()) else {})
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """End the recipient lock's transaction if this batch opened it and timing_many did not
        end it (an error in between): rolled back, nothing written."""
        if self._early is not None:
            self._early = None
            with connection.cursor() as cursor:
                _rollback(cursor)

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
        return self.timing_many([(message, channel)])[message.pk]

    def timing_many(self, routed: list[tuple[Message, str]]) -> dict[int, str | None]:
        """timing() for each (message, channel routed to), in order: message id → None or its
        new status. The rules and caps of them all are decided in one transaction under their
        recipients' locks (_locked_checks), each message counting those before it that pass;
        the messages held by quiet hours or a flag are moved after it."""
        holds, checks = {}, []
        for message, channel in routed:
            policy = self.tenants[message.tenant_id]
            category = self.category(message)
            hold = self._quiet_hours(message, policy, category) or self._flags(message, policy, category)
            if hold is not None:
                holds[message.pk] = hold
                continue
            rules, caps = policy.applicable(category, channel, message.priority)
            checks.append(_Check(message, channel, policy, category, rules, caps))
        early, self._early = self._early, None
        if any(check.rules or check.caps for check in checks):
            # All of them, so that a message the batch sends unchecked still counts for those after it.
            decided = _locked_checks(checks, early)
        else:
            decided = {check.message.pk: None for check in checks}  # no query at all
            if early is not None:
                with _rolled_back_on_error() as cursor:
                    _lock_close(cursor, [], early.now)  # nothing to stamp: COMMIT, the locks go
        moved = {pk: hold() for pk, hold in holds.items()}  # after the locks: not in their transaction
        return {message.pk: moved[message.pk] if message.pk in moved else decided[message.pk]
                for message, _ in routed}

    def _flags(self, message: Message, policy: TenantPolicy, category: Category):
        """A flag rule holding this category while a flag is set on the recipient: a function
        that moves the message and returns its status, or None."""
        if message.priority == "critical":
            return None
        flags = self.flags.get(message.recipient_id, {})
        for rule in policy.flag_rules:
            flag = flags.get(rule.flag)
            if flag is None or category.key not in rule.categories:
                continue
            detail = {"flag_rule": rule.pk, "flag": rule.flag, "set_at": flag.set_at.isoformat()}
            if rule.action == FlagRule.Action.SUPPRESS:
                return partial(_suppress, message, reason_code="flag", detail=detail,
                               reason=f"suppressed: {category.key} is held while {rule.flag} is set")
            until = flag.expires_at or clock.now() + FLAG_RECHECK
            timezone = message.recipient.timezone or policy.timezone
            ends = "expires" if flag.expires_at else "is checked again"
            return partial(_defer, message, until, reason_code="flag",
                           detail={**detail, "until": until.isoformat()},
                           reason=f"deferred: {category.key} is held while {rule.flag} is set; it {ends} "
                                  f"at {evaluation.local_time_words(until, timezone)}")
        return None

    def _quiet_hours(self, message: Message, policy: TenantPolicy, category: Category):
        """A function that defers the message to the end of its quiet hours and returns its
        status, or None."""
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
        return partial(_defer, message, until, reason_code="quiet_hours",
                       reason=f"deferred: quiet hours until {words}",
                       detail={"until": until.isoformat(), "timezone": timezone,
                               "by": "recipient" if source is preference else "tenant"})


@dataclass
class _Check:
    """A message whose suppression rules and caps are decided under its recipient's lock."""

    message: Message
    channel: str
    policy: TenantPolicy
    category: Category
    rules: list[SuppressionRule]
    caps: list[Cap]


def _locked_checks(checks: list[_Check], early: "_Recent | None" = None) -> dict[int, str | None]:
    """Suppression rules, then caps, under the recipients' row locks (SELECT … FOR UPDATE): two
    workers deciding for one recipient are serialised, and a message that passes takes its slot
    at once (sent_at and its channel are stamped), so the next one counts it. Rules and caps are
    answered by one grouped aggregate over the recipients' recent messages (the message_slots
    index); within the batch each message that passes is added to its recipient's rows, so the
    messages after it count it as a later worker would. `early`: the locks were taken and the
    aggregate run already (PolicyBatch), in the transaction still open."""
    recent = early or _Recent.for_checks(checks, clock.now())
    verdicts = {}

    def decide(rows) -> list[tuple[int, str]]:
        slots = recent.by_recipient(rows)
        passed = []
        for check in checks:
            mine = slots.setdefault(check.message.recipient_id, [])
            latest, counts = recent.found(check, mine)
            rule, trigger_at = _first_rule_hit(check.rules, latest, recent.now)
            reached = [cap for cap in check.caps if rule is None and counts[_cap_name(cap)] >= cap.limit]
            verdicts[check.message.pk] = (counts, rule, trigger_at, reached)
            if rule is None and not reached:
                mine.append(recent.slot(check))
                passed.append((check.message.pk, check.channel))
        return passed

    # Each message that passes takes its slot: its sent_at, and its channel so that channel caps count it.
    if early is None:
        passed = _under_recipient_lock([c.message.recipient_id for c in checks], recent, decide, recent.now)
    else:
        with _rolled_back_on_error() as cursor:
            passed = decide(early.rows)
            _lock_close(cursor, passed, early.now)
    passed = dict(passed)
    outcome = {}
    for check in checks:  # the rare paths (a rule or a cap holds the message): a query or two to explain it
        message, (counts, rule, trigger_at, reached) = check.message, verdicts[check.message.pk]
        if message.pk in passed:
            outcome[message.pk] = None
        elif rule is not None:
            trigger = (_history(message).filter(category__in=rule.after_categories, sent_at=trigger_at)
                       .values("id", "category", "sent_at").first())
            outcome[message.pk] = _rule_hit(message, check.category, rule, trigger)
        else:
            verdict = evaluation.cap_verdict(reached=_room_at(message, check.policy, reached, recent.now),
                                             priority=message.priority)
            outcome[message.pk] = _cap_hit(message, check.policy, counts, *verdict)
    return outcome


def _room_at(message: Message, policy: TenantPolicy, caps: list[Cap], now: datetime
             ) -> list[tuple[Cap, datetime]]:
    """Each of the `caps` the message reached at `now`, with when its window next has room: when
    the oldest message holding one of its slots leaves it. Read after the lock's transaction
    committed, so it includes the messages its batch stamped before this one."""
    exempt, periods = policy.cap_exempt, sorted({cap.period for cap in caps})
    oldest = {f"oldest_{p}": Min("sent_at", filter=Q(sent_at__gt=now - WINDOWS[p])) for p in periods}
    rows = list(_history(message).filter(sent_at__gt=now - max(WINDOWS[p] for p in periods))
                .values("category", "channel").annotate(**oldest))
    return [(cap, min((row[f"oldest_{cap.period}"] for row in rows if row[f"oldest_{cap.period}"]
                       and _counts(cap, row["category"], row["channel"], exempt)), default=now)
             + WINDOWS[cap.period]) for cap in caps]


def _early_recent(messages: list[Message]) -> "_Recent | None":
    """The batch's recent-messages count to run with the lock in PolicyBatch's round trip: on
    PostgreSQL outside any transaction, when this process holds the batch's tenants' policies and
    they have rules or caps; else None."""
    if not messages or connection.vendor != "postgresql" or connection.in_atomic_block:
        return None
    policies = PolicyLookup.cached({m.tenant_id for m in messages})
    if policies is None or not any(p.rules or p.caps for p in policies.values()):
        return None
    return _Recent.for_batch(messages, policies, clock.now())


def _under_recipient_lock(recipient_ids: list[int], recent: "_Recent", decide, now: datetime
                          ) -> list[tuple[int, str]]:
    """Lock the recipients' rows (in id order, so that batches never deadlock), run the `recent`
    aggregate, let `decide` judge its rows and stamp the messages it returns as (id, channel)
    with `now` and that channel, all in one transaction; returns what `decide` returned.

    On PostgreSQL outside any transaction (as the pipeline calls it), in two round trips:
    _lock_open, then _lock_close. Elsewhere (SQLite, or inside a caller's transaction) the same
    steps one statement at a time."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        with transaction.atomic(), connection.cursor() as cursor:
            list(Recipient.objects.select_for_update().filter(pk__in=sorted(set(recipient_ids)))
                 .order_by("pk").values_list("pk"))
            cursor.execute(recent.sql, recent.params)
            passed = decide(cursor.fetchall())
            for pk, channel in passed:
                Message.objects.filter(pk=pk).update(sent_at=now, channel=channel)
        return passed
    with _rolled_back_on_error() as cursor:
        _lock_open(cursor, recipient_ids, *recent.statement(cursor))
        passed = decide(cursor.fetchall())
        _lock_close(cursor, passed, now)
    return passed


# The lock's statements, prepared on a kept connection (apps/core/postgresql/prepared.py): each
# value cast to its type. Built from constants only (table names).
_LOCK = f"SELECT id FROM {Recipient._meta.db_table} WHERE id = ANY(%s::bigint[]) ORDER BY id FOR UPDATE"  # noqa: S608
_STAMP = (f"UPDATE {Message._meta.db_table} "  # noqa: S608
          "SET sent_at = %s::timestamptz, channel = %s::text WHERE id = ANY(%s::bigint[])")


def _lock_open(cursor, recipient_ids: list[int], sql: str, params: list) -> None:
    """One round trip: `BEGIN`, the recipients' row locks (in id order), then `sql`; the cursor
    is left on `sql`'s first result. Plain SQL, sent as one simple query (client-side binding,
    Django's default for psycopg 3), whose statements each take their own snapshot — `sql`'s
    is taken after the locks are granted, so it sees what the previous holder committed
    (apps/policy/tests/test_cap_race.py fails without the lock).

    The transaction commits asynchronously (`synchronous_commit = off`, for it alone): it holds
    only the slot stamps, and waiting for its WAL flush cost more than the rest (0.37 of 1.23 ms
    here). Other sessions see it at once, as with any commit, so the lock still serialises the
    decisions; only a database crash within the WAL writer's delay (a few hundred ms) can lose
    stamps, and then those messages, left `sending`, are re-sent by the rescue like any message
    claimed before a crash, and may take their slot again.

    The aggregate is usually a prepared statement, run with its generic plan: _Recent.statement."""
    prepared.prepare(cursor, [_LOCK, _STAMP])
    lock, ids = prepared.statement(cursor, _LOCK, [prepared.int_array(sorted(set(recipient_ids)))])
    opening = ["BEGIN", "SET LOCAL synchronous_commit = off", GENERIC_PLAN, lock]
    cursor.execute("; ".join([*opening, sql]), [*ids, *params])
    for _ in range(len(opening)):
        cursor.nextset()


def _lock_close(cursor, passed: list[tuple[int, str]], now: datetime) -> None:
    """One round trip: stamp the messages that passed, as (id, channel), with `now` and that
    channel (their slot), and `COMMIT`. An UPDATE per channel: cheaper to plan than one joining
    the ids to their channels (0.03 ms a message, pgbench)."""
    ids: dict[str, list[int]] = {}
    for pk, channel in passed:
        ids.setdefault(channel, []).append(pk)
    stamps = [prepared.statement(cursor, _STAMP, [now, channel, prepared.int_array(pks)])
              for channel, pks in ids.items()]
    cursor.execute("; ".join([sql for sql, _ in stamps] + ["COMMIT"]),
                   [value for _, params in stamps for value in params])


@contextmanager
def _rolled_back_on_error():
    """A cursor inside the recipient lock's transaction: any error rolls it back."""
    with connection.cursor() as cursor:
        try:
            yield cursor
        except BaseException:
            _rollback(cursor)
            raise


def _rollback(cursor) -> None:
    try:
        cursor.execute("ROLLBACK")
    except Exception:  # noqa: BLE001 — the connection is broken: Django discards it; re-raise the first error
        connection.close_if_unusable_or_obsolete()


def _aware(value: str) -> datetime:
    """A timestamp the aggregate gave as text: PostgreSQL's ISO output (with its offset) or
    SQLite's (UTC, without one)."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _history(message: Message):
    """The recipient's other messages that hold a slot."""
    return Message.objects.filter(tenant_id=message.tenant_id, recipient_id=message.recipient_id,
                                  status__in=COUNTED).exclude(pk=message.pk)


def _cap_name(cap: Cap) -> str:
    return f"cap:{cap.scope}:{cap.key}:{cap.period}"


class _Recent:
    """The batch's recipients' messages holding a slot, recently: one query grouped by (recipient,
    category, channel) giving the latest send and, per cap period, the count. `found` turns a
    recipient's rows into what a message's rules and caps ask.
    When a cap is reached, _room_at reads when it next has room (the rare path: the oldest of its
    messages, which the aggregate leaves out: 0.04 of its 0.44 ms, docs/performance.md). Built for
    the checks timing has (for_checks) or, before routing, for every rule and cap of the batch's
    tenants (for_batch)."""

    def __init__(self, now: datetime, *, messages: list[Message], caps: list[Cap],
                 rules: list[SuppressionRule], policies: dict[int, TenantPolicy] | None = None):
        self.now, self.policies, self.rows = now, policies or {}, []
        self.periods = sorted({cap.period for cap in caps})
        span = max([timedelta(minutes=max((r.window_minutes for r in rules), default=0)),
                    *[WINDOWS[p] for p in self.periods]])
        tenants = sorted({m.tenant_id for m in messages})
        recipients = sorted({m.recipient_id for m in messages})
        ids = sorted({m.pk for m in messages})
        self.sql = _recent_sql(tuple(self.periods), len(tenants), len(recipients), len(ids))
        self.params = [*[now - WINDOWS[period] for period in self.periods], *tenants, *recipients, *ids,
                       now - span]
        self.lone = len(ids) == 1

    def statement(self, cursor) -> tuple[str, list]:
        """The aggregate to run inside _lock_open's transaction: for a lone message on
        PostgreSQL, EXECUTE of it prepared on this connection (_prepare, the first time),
        unless its generic plan there was not on message_slots; otherwise the plain statement.

        Planned anew each time, it cost 0.12–0.14 ms of a lone message's ≈ 0.85 ms of round
        trips (bench/policy.py). A batch's planning is shared by its messages, and a generic
        plan of its lists of values rebuilt them for every row counted (63 against 25 ms for
        50 recipients' 50,000 messages). Not on a connection that is not kept either
        (CONN_MAX_AGE = 0: it would prepare for every batch)."""
        if not (self.lone and prepared.kept(connection)):
            return self.sql, self.params
        held = prepared.held(connection)
        if self.sql not in held:
            held[self.sql] = _prepare(cursor, self.sql, self.params)
        name = held[self.sql]
        return (f"EXECUTE {name}({_marks(self.params)})", self.params) if name else (self.sql, self.params)

    @classmethod
    def for_checks(cls, checks: list[_Check], now: datetime) -> "_Recent":
        return cls(now, messages=[c.message for c in checks], caps=[cap for c in checks for cap in c.caps],
                   rules=[rule for c in checks for rule in c.rules])

    @classmethod
    def for_batch(cls, messages: list[Message], policies: dict[int, TenantPolicy], now: datetime
                  ) -> "_Recent":
        """Every rule and cap of the tenants' policies, whichever applies once routed."""
        return cls(now, messages=messages, caps=[cap for p in policies.values() for cap in p.caps],
                   rules=[rule for p in policies.values() for rule in p.rules], policies=policies)

    def by_recipient(self, rows) -> dict[int, list]:
        """recipient id → its rows (category, channel, latest, then the count per period)."""
        found = {}
        for recipient_id, category, channel, latest, *counts in rows:
            found.setdefault(recipient_id, []).append([category, channel, _aware(latest), *counts])
        return found

    def slot(self, check: _Check) -> list:
        """The row a message that passes adds: sent now on its channel, in every period."""
        return [check.category.key, check.channel, self.now, *[1] * len(self.periods)]

    def found(self, check: _Check, rows: list) -> tuple[dict[str, datetime], dict[str, int]]:
        """From a recipient's rows, what `check` asks: each category's latest send (for its
        rules) and, by cap name, the messages holding one of the cap's slots."""
        latest = {}
        for category, _, sent, *_ in rows:
            if category not in latest or sent > latest[category]:
                latest[category] = sent
        exempt, counts = check.policy.cap_exempt, {}
        for cap in check.caps:
            at = 3 + self.periods.index(cap.period)
            counts[_cap_name(cap)] = sum(row[at] for row in rows if _counts(cap, row[0], row[1], exempt))
        return latest, counts


@lru_cache(maxsize=512)
def _recent_sql(periods: tuple[str, ...], tenants: int, recipients: int, ids: int) -> str:
    """_Recent's aggregate for these cap periods and numbers of values. Built from constants and
    placeholders only (column and table names, and the statuses of message_slots' condition,
    which a generic plan must see to use that index); every value is a parameter. The latest
    send as text, parsed by datetime.fromisoformat: the driver's loader (Django's, in Python)
    took longer than the aggregate's rows were worth (bench/policy.py)."""
    columns = ["recipient_id", "category", "channel", "CAST(MAX(sent_at) AS text)",
               *["COUNT(*) FILTER (WHERE sent_at > %s)"] * len(periods)]
    statuses = ", ".join(f"'{status}'" for status in COUNTED)
    return (f"SELECT {', '.join(columns)} "  # noqa: S608
            f"FROM {Message._meta.db_table} WHERE tenant_id IN ({_marks(range(tenants))}) "
            f"AND recipient_id IN ({_marks(range(recipients))}) AND status IN ({statuses}) "
            f"AND id NOT IN ({_marks(range(ids))}) AND sent_at > %s GROUP BY recipient_id, category, channel")


def _prepare(cursor, sql: str, params: list) -> str | None:
    """Prepare the aggregate `sql` on this connection and make its generic plan (with `params`,
    in one round trip): its name, or None (deallocated) if that plan does not scan message_slots.

    PostgreSQL keeps a statement's generic plan while the statistics of its tables stand.
    Made on a small table, it scans an index of the tenant's messages (message_tenant_category:
    apps/policy/tests/test_locking.py), which grows with the table; a connection lives
    CONN_MAX_AGE, and the next one tries again."""
    name = prepared.new_name("signalbox_recent")
    cursor.execute(f"PREPARE {name} AS {prepared.positional(sql)}; "
                   f"{GENERIC_PLAN}; EXPLAIN EXECUTE {name}({_marks(params)})", params)
    cursor.nextset()
    cursor.nextset()
    if _on_slots_index("\n".join(row[0] for row in cursor.fetchall())):
        return name
    cursor.execute(f"DEALLOCATE {name}")
    return None


def _on_slots_index(plan: str) -> bool:
    return f"using {SLOTS_INDEX} on" in plan


def _counts(cap: Cap, category: str, channel: str, exempt: set[str]) -> bool:
    """Whether a message of `category` sent on `channel` holds one of `cap`'s slots."""
    if cap.scope == Cap.Scope.CATEGORY:
        return category == cap.key
    return category not in exempt and (cap.scope != Cap.Scope.CHANNEL or channel == cap.key)


def _marks(values: list) -> str:
    return ", ".join(["%s"] * len(values))


def _first_rule_hit(rules: list[SuppressionRule], latest: dict[str, datetime], now: datetime
                    ) -> tuple[SuppressionRule | None, datetime | None]:
    """The first rule a recent send of one of its categories sets off (`latest`: each category's
    latest send), and that send's time."""
    for rule in rules:
        since = now - timedelta(minutes=rule.window_minutes)
        hit = max((latest[key] for key in rule.after_categories if key in latest and latest[key] > since),
                  default=None)
        if hit is not None:
            return rule, hit
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


def _cap_hit(message: Message, policy: TenantPolicy, counts: dict, cap: Cap, action: str,
             until: datetime) -> str:
    """Over `cap`: dropped, or deferred until its window has room, per its action for the
    message's priority."""
    detail = {"cap": cap.pk, "scope": cap.scope, "key": cap.key, "period": cap.period,
              "limit": cap.limit, "count": counts[_cap_name(cap)], "priority": message.priority}
    if action == Cap.Action.DROP:
        message_transition(message=message, to=Status.SUPPRESSED, reason_code="frequency_cap",
                           reason=f"suppressed: frequency cap of {cap.words()} reached", detail=detail)
        return Status.SUPPRESSED
    words = evaluation.local_time_words(until, message.recipient.timezone or policy.timezone)
    _defer(message, until, reason_code="frequency_cap",
           reason=f"deferred: frequency cap of {cap.words()} reached until {words}",
           detail={**detail, "until": until.isoformat()})
    return Status.SCHEDULED


def _defer(message: Message, until, *, reason_code: str, reason: str, detail: dict) -> str:
    """Back to `scheduled`, due at `until` (messages_release_due re-queues it, and the policy
    decides again). The claim that brought it here does not count as an attempt."""
    message_transition(message=message, to=Status.SCHEDULED, reason_code=reason_code, reason=reason,
                       detail=detail, next_attempt_at=until, attempts=max(message.attempts - 1, 0))
    return Status.SCHEDULED


def _suppress(message: Message, *, reason_code: str, reason: str, detail: dict) -> str:
    message_transition(message=message, to=Status.SUPPRESSED, reason_code=reason_code, reason=reason,
                       detail=detail)
    return Status.SUPPRESSED


def preference_get(*, recipient: Recipient) -> Preference:
    """The recipient's preferences (an unsaved default row when they have set none)."""
    found = Preference.objects.filter(tenant_id=recipient.tenant_id, recipient=recipient).first()
    return found or Preference(tenant_id=recipient.tenant_id, recipient=recipient)


def preference_save(*, preference: Preference) -> Preference:
    preference.full_clean(exclude=["tenant", "recipient"])
    preference.save()
    return preference


def address_suppress(*, tenant_id: int, channel: str, address: str, source: str, reason: str = "") -> bool:
    """Add an address to the tenant's suppression list; False if it was already there (the entry
    keeps its first source). Emails are compared lower-cased, as recipients store them."""
    address = address.strip().lower() if channel == Channel.EMAIL else address.strip()
    _, created = SuppressedAddress.objects.get_or_create(
        tenant_id=tenant_id, channel=channel, address=address,
        defaults={"source": source, "reason": reason[:200]})
    return created


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


@dataclass(frozen=True)
class FlagDryRun:
    recipients: int  # with the flag set now
    held: int  # of their queued or scheduled messages, those the rule would hold
    sample: list[dict]  # the first of them: id, recipient, status, category


def flag_rule_dry_run(*, rule: FlagRule, shown: int = 20) -> FlagDryRun:
    """What the rule would do now, changing nothing: the recipients of its tenant and sub-tenants
    (which inherit it) with its flag set and not expired, and their queued or scheduled messages
    of its categories that are not critical."""
    from apps.tenants.selectors import tenant_descendant_ids

    tenant_ids = tenant_descendant_ids(tenant_ids=[rule.tenant_id])
    flagged = RecipientFlag.objects.filter(tenant_id__in=tenant_ids, flag=rule.flag).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=clock.now()))
    held = (Message.objects.filter(tenant_id__in=tenant_ids, status__in=[Status.QUEUED, Status.SCHEDULED],
                                   category__in=rule.categories,
                                   recipient_id__in=flagged.values("recipient_id"))
            .exclude(priority="critical"))
    sample = list(held.order_by("id").values("id", "recipient__external_id", "status", "category")[:shown])
    return FlagDryRun(recipients=flagged.count(), held=held.count() if len(sample) == shown else len(sample),
                      sample=sample)


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
                flag_release_held(tenant_id=event.tenant_id, recipient_id=event.recipient_id, rule=rule)


def flag_release_held(*, tenant_id: int, recipient_id: int, rule: FlagRule) -> int:
    """The recipient's messages a flag holds (`scheduled`, their latest entry a hold by this
    flag) are queued and sent now, not at their next check: a few statements whatever their
    number. Policy decides again when they are sent (another flag may still hold them)."""
    latest = StatusEvent.objects.filter(message=OuterRef("pk")).order_by("-id").values("id")[:1]
    held = (Message.objects.filter(tenant_id=tenant_id, recipient_id=recipient_id, status=Status.SCHEDULED,
                                   category__in=rule.categories)
            .annotate(latest=Subquery(latest))
            .filter(Exists(StatusEvent.objects.filter(pk=OuterRef("latest"), reason_code="flag",
                                                      detail__flag=rule.flag))))
    assert Status.QUEUED in TRANSITIONS[Status.SCHEDULED]
    now = clock.now()
    with transaction.atomic():
        # SKIP LOCKED: one messages_release_due is queuing already is left to it.
        ids = list(held.select_for_update(skip_locked=True, of=("self",)).values_list("pk", flat=True))
        Message.objects.filter(pk__in=ids, status=Status.SCHEDULED).update(
            status=Status.QUEUED, next_attempt_at=None, updated_at=now)
        StatusEvent.objects.bulk_create([StatusEvent(
            message_id=pk, status=Status.QUEUED, reason_code="flag_cleared",
            reason=f"released: {rule.flag} was cleared", detail={"flag_rule": rule.pk, "flag": rule.flag},
            created_at=now) for pk in ids])
        enqueue_sends(ids)
    return len(ids)
