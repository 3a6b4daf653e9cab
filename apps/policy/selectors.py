"""Reads for policy. A tenant's categories and settings come from a per-process cache valid
while the shared version (PolicyVersion) is unchanged (bumped when any of them is edited), so
deciding for a message costs no query for them; preferences, suppressed addresses and the version
are read once per batch."""

import json
from dataclasses import dataclass, field
from datetime import datetime, time
from functools import cached_property
from typing import NamedTuple

from django.db import connection
from django.db.models import F

from apps.core.postgresql import prepared
from apps.policy import evaluation
from apps.policy.models import (
    Cap,
    Category,
    FlagRule,
    Kind,
    PolicySettings,
    PolicyVersion,
    Preference,
    RecipientFlag,
    SuppressedAddress,
    SuppressionRule,
)

# Known to every tenant without being defined: what a message names when it names nothing.
GENERAL = "general"


@dataclass
class TenantPolicy:
    """A tenant's effective categories (nearest tenant wins per key) and settings."""

    categories: dict[str, Category] = field(default_factory=dict)
    settings: PolicySettings | None = None
    timezone: str = "UTC"
    rules: list[SuppressionRule] = field(default_factory=list)
    flag_rules: list[FlagRule] = field(default_factory=list)
    caps: list[Cap] = field(default_factory=list)
    _applicable: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def caps_exempt_transactional(self) -> bool:
        return self.settings is None or self.settings.caps_exempt_transactional

    @cached_property
    def cap_exempt(self) -> frozenset[str]:
        """The categories whose messages hold no cap's slot (a cached policy is never changed)."""
        if not self.caps_exempt_transactional:
            return frozenset()
        return frozenset(key for key, c in self.categories.items() if c.kind == Kind.TRANSACTIONAL)

    def applicable(self, category: Category, channel: str, priority: str
                   ) -> tuple[list[SuppressionRule], list[Cap]]:
        """The rules and the caps that hold a message of `category` routed to `channel` with
        `priority`: worked out once per process for each such combination."""
        key = (category.key, category.kind, channel, priority)
        if key not in self._applicable:
            self._applicable[key] = (
                [rule for rule in self.rules
                 if evaluation.rule_applies(rule=rule, category=category, priority=priority)],
                [cap for cap in self.caps if evaluation.cap_applies(
                    cap=cap, category=category, channel=channel, priority=priority,
                    exempt_transactional=self.caps_exempt_transactional)])
        return self._applicable[key]

    def category(self, key: str) -> Category | None:
        """The category `key` names; None if unknown. A tenant that has defined no categories
        (policy not set up yet, as after an upgrade) knows every key, with plain defaults."""
        if key in self.categories:
            return self.categories[key]
        if key == GENERAL or not self.categories:
            return Category(key=key, name=key, kind=Kind.PRODUCT)
        return None


def tenant_policy_load(*, tenant) -> TenantPolicy:
    """Five queries: the categories, settings, rules, flag rules and caps of the tenant and its
    ancestors."""
    lineage = tenant.lineage()
    rank = {t.pk: depth for depth, t in enumerate(lineage)}
    categories: dict[str, Category] = {}
    for category in sorted(Category.objects.filter(tenant__in=lineage), key=lambda c: -rank[c.tenant_id]):
        categories[category.key] = category  # nearer tenants come later and win
    settings = sorted(PolicySettings.objects.filter(tenant__in=lineage), key=lambda s: rank[s.tenant_id])
    rules = list(SuppressionRule.objects.filter(tenant__in=lineage, enabled=True).order_by("id"))
    flag_rules = list(FlagRule.objects.filter(tenant__in=lineage, enabled=True).order_by("id"))
    settings = settings[0] if settings else None
    caps = settings_caps(settings) + list(Cap.objects.filter(tenant__in=lineage).order_by("id"))
    return TenantPolicy(categories=categories, settings=settings, rules=rules, flag_rules=flag_rules,
                        caps=caps, timezone=tenant.effective_default_timezone())


def settings_caps(settings: PolicySettings | None) -> list[Cap]:
    """PolicySettings' cap_per_day / cap_per_week as (unsaved) caps across all channels, with its
    cap_action for every priority."""
    if settings is None:
        return []
    limits = {Cap.Period.DAY: settings.cap_per_day, Cap.Period.WEEK: settings.cap_per_week}
    return [Cap(tenant_id=settings.tenant_id, scope=Cap.Scope.ALL, period=period, limit=limit,
                action=settings.cap_action, low_action=settings.cap_action)
            for period, limit in limits.items() if limit]


class PolicyLookup:
    """tenant_policy_load, cached per process while the shared version (PolicyVersion) is
    unchanged. Pass the version when it was read already (PolicyBatch reads it with the batch's
    preferences); otherwise it costs one query. Without a version row it always loads."""

    _found: dict[int, TenantPolicy] = {}
    _version: int | None = None

    def __init__(self, version: int | None = None):
        version = policy_version() if version is None else version
        if version is None or version != PolicyLookup._version:
            PolicyLookup._found, PolicyLookup._version = {}, version
        self.found = PolicyLookup._found if version is not None else {}

    @staticmethod
    def cached(tenant_ids) -> dict[int, TenantPolicy] | None:
        """The policies this process holds for these tenants, of whatever version it read last
        (None unless it holds them all): to build a batch's statements before the round trip
        that reads the version. Compare with what PolicyLookup(version) then gives."""
        found = PolicyLookup._found
        if PolicyLookup._version is None or not all(pk in found for pk in tenant_ids):
            return None
        return {pk: found[pk] for pk in tenant_ids}

    def __call__(self, *, tenant) -> TenantPolicy:
        if tenant.pk not in self.found:
            self.found[tenant.pk] = tenant_policy_load(tenant=tenant)
        return self.found[tenant.pk]


def policy_version() -> int | None:
    # Plain SQL: the ORM's building of this one-row read cost more than running it (0.4 ms of
    # each POST /api/v1/messages, measured with py-spy).
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT value FROM {PolicyVersion._meta.db_table} WHERE id = 1")  # noqa: S608
        row = cursor.fetchone()
    return row[0] if row else None


def policy_changed(**kwargs) -> None:
    """Signal receiver: a category, settings row, rule or tenant changed; every process reloads
    once this transaction commits."""
    if not PolicyVersion.objects.filter(pk=1).update(value=F("value") + 1):
        PolicyVersion.objects.get_or_create(pk=1)


class PreferenceRow(NamedTuple):
    """What the pipeline reads of a Preference (a row, not a model instance: cheaper per batch)."""

    channels: dict
    quiet_start: time | None
    quiet_end: time | None
    commercial_unsubscribed_at: datetime | None


def preferences_and_suppressed_for_many(*, recipient_ids, pairs) -> tuple[
        dict[int, PreferenceRow], set[tuple[int, str, str]], int | None]:
    """The recipients' preferences, of (tenant id, channel, address) triples those on their
    tenant's suppression list, and the policy version: what every batch reads. On PostgreSQL the
    three queries go in one round trip (BatchReads)."""
    if connection.vendor != "postgresql":
        recipient_ids, pairs = list(set(recipient_ids)), {p for p in pairs if p[2]}
        preferences = Preference.objects.filter(recipient_id__in=recipient_ids).values_list(
            "recipient_id", *PreferenceRow._fields)
        listed = SuppressedAddress.objects.filter(
            tenant_id__in={t for t, _, _ in pairs}, address__in={a for _, _, a in pairs}
        ).values_list("tenant_id", "channel", "address")
        return _preference_rows(preferences), set(listed) & pairs, policy_version()
    reads = BatchReads(recipient_ids=recipient_ids, pairs=pairs)
    with connection.cursor() as cursor:
        cursor.execute(*reads.statement(cursor))
        return reads.load(cursor)


class BatchReads:
    """preferences_and_suppressed_for_many's three queries on PostgreSQL, in plain SQL (the ORM's
    building of them cost more than running them: bench/policy.py), to send alone or after other
    statements in the same round trip (the recipient lock: apps.policy.services)."""

    # Built from constants only (column and table names); every value is a parameter, cast to its
    # type: prepared on a kept connection (apps/core/postgresql/prepared.py).
    PREFERENCES = (f"SELECT recipient_id, {', '.join(PreferenceRow._fields)} "  # noqa: S608
                   f"FROM {Preference._meta.db_table} WHERE recipient_id = ANY(%s::bigint[])")
    SUPPRESSED = (f"SELECT tenant_id, channel, address FROM {SuppressedAddress._meta.db_table} "  # noqa: S608
                  "WHERE tenant_id = ANY(%s::bigint[]) AND address = ANY(%s::text[])")
    VERSION = f"SELECT value FROM {PolicyVersion._meta.db_table} WHERE id = 1"  # noqa: S608
    QUERIES = [PREFERENCES, SUPPRESSED, VERSION]

    def __init__(self, *, recipient_ids, pairs):
        self.pairs = {p for p in pairs if p[2]}
        tenants, addresses = list({t for t, _, _ in self.pairs}), list({a for _, _, a in self.pairs})
        self.reads = [(self.PREFERENCES, [prepared.int_array(set(recipient_ids))]),
                      (self.SUPPRESSED, [prepared.int_array(tenants), addresses]),
                      (self.VERSION, [])]

    def statement(self, cursor) -> tuple[str, list]:
        """The three queries as one string and its parameters."""
        prepared.prepare(cursor, self.QUERIES)
        sent = [prepared.statement(cursor, sql, params) for sql, params in self.reads]
        return "; ".join(sql for sql, _ in sent), [value for _, params in sent for value in params]

    def load(self, cursor) -> tuple[dict[int, PreferenceRow], set[tuple[int, str, str]], int | None]:
        """The three results, from a cursor on the first of them."""
        preferences = cursor.fetchall()
        cursor.nextset()
        listed = cursor.fetchall()
        cursor.nextset()
        version = cursor.fetchone()
        return (_preference_rows(preferences), {tuple(row) for row in listed} & self.pairs,
                version[0] if version else None)


def _preference_rows(rows) -> dict[int, PreferenceRow]:
    found = {}
    for recipient_id, channels, *rest in rows:
        # Plain SQL returns jsonb as text (Django decodes it in JSONField, not in the driver).
        channels = json.loads(channels) if isinstance(channels, str) else channels
        found[recipient_id] = PreferenceRow(channels or {}, *rest)
    return found


def flags_for_many(*, recipient_ids, now) -> dict[int, dict[str, RecipientFlag]]:
    """recipient id → {flag: RecipientFlag} of the flags set and not expired."""
    found: dict[int, dict[str, RecipientFlag]] = {}
    rows = RecipientFlag.objects.filter(recipient_id__in=set(recipient_ids)).exclude(expires_at__lte=now)
    for row in rows:
        found.setdefault(row.recipient_id, {})[row.flag] = row
    return found
