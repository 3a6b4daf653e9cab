"""The evaluation order and quiet-hours arithmetic, table-driven (docs/policy.md)."""

from datetime import UTC, datetime, time

import pytest

from apps.messaging.models import Priority
from apps.policy import evaluation
from apps.policy.models import Cap, Category, Kind, Preference
from apps.policy.selectors import tenant_policy_load
from apps.policy.tests.factories import CategoryFactory, PolicySettingsFactory
from apps.tenants.tests.factories import TenantFactory

MARKETING = Category(key="marketing", kind=Kind.COMMERCIAL)
SECURITY = Category(key="security", kind=Kind.TRANSACTIONAL, required=True)
DIGEST = Category(key="digest", kind=Kind.PRODUCT, channels_off=["sms"])
UNSUBSCRIBED = datetime(2026, 1, 1, tzinfo=UTC)


def pref(channels=None, unsubscribed=None):
    return Preference(channels=channels or {}, commercial_unsubscribed_at=unsubscribed)


@pytest.mark.parametrize(("category", "channel", "suppressed", "preference", "expected"), [
    # the suppression list comes first and applies even to required categories
    (SECURITY, "email", True, None, "the email address is on the suppression list"),
    (MARKETING, "email", True, pref(unsubscribed=UNSUBSCRIBED),
     "the email address is on the suppression list"),
    # a required category cannot be muted or unsubscribed from
    (SECURITY, "email", False, pref({"security": {"email": False}}), None),
    (Category(key="security", kind=Kind.COMMERCIAL, required=True), "email", False,
     pref(unsubscribed=UNSUBSCRIBED), None),
    # commercial unsubscribe beats a preference that turns the channel on
    (MARKETING, "email", False, pref({"marketing": {"email": True}}, UNSUBSCRIBED),
     "the recipient unsubscribed from commercial messages"),
    (DIGEST, "email", False, pref(unsubscribed=UNSUBSCRIBED), None),  # not commercial
    # the recipient's preference beats the category default, both ways
    (MARKETING, "push", False, pref({"marketing": {"push": False}}),
     "the recipient muted push for marketing"),
    (DIGEST, "sms", False, pref({"digest": {"sms": True}}), None),
    (DIGEST, "sms", False, pref({"digest": {"email": False}}), "sms is off by default for digest"),
    (DIGEST, "sms", False, None, "sms is off by default for digest"),
    (DIGEST, "email", False, None, None),
])
def test_eligibility_order(category, channel, suppressed, preference, expected):
    assert evaluation.channel_blocked(category=category, channel=channel, suppressed=suppressed,
                                      preference=preference) == expected


@pytest.mark.django_db
def test_categories_and_settings_are_inherited_three_levels_down_nearest_tenant_wins():
    root = TenantFactory()
    middle = TenantFactory(parent=root)
    leaf = TenantFactory(parent=middle)
    CategoryFactory(tenant=root, key="marketing", kind=Kind.COMMERCIAL, channels_off=["sms"])
    CategoryFactory(tenant=root, key="billing", kind=Kind.TRANSACTIONAL)
    CategoryFactory(tenant=middle, key="marketing", kind=Kind.COMMERCIAL, channels_off=["sms", "push"])
    CategoryFactory(tenant=leaf, key="tips")
    CategoryFactory(tenant=TenantFactory(), key="elsewhere")  # another tenant's: never seen
    PolicySettingsFactory(tenant=root, cap_per_day=3)
    PolicySettingsFactory(tenant=middle, cap_per_day=5)

    policy = tenant_policy_load(tenant=leaf)
    assert sorted(policy.categories) == ["billing", "marketing", "tips"]
    assert policy.categories["marketing"].channels_off == ["sms", "push"]  # middle overrides root
    assert policy.settings.cap_per_day == 5
    assert policy.category("elsewhere") is None
    assert policy.category("general").key == "general"
    root_policy = tenant_policy_load(tenant=root)
    assert root_policy.categories["marketing"].channels_off == ["sms"]
    assert root_policy.settings.cap_per_day == 3


def at(text):
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(("now", "start", "end", "timezone", "expected"), [
    # 21:00–08:00 Berlin, winter (UTC+1) and summer (UTC+2)
    ("2026-01-15T21:30:00+00:00", "21:00", "08:00", "Europe/Berlin", "2026-01-16T07:00:00+00:00"),
    ("2026-07-15T05:00:00+00:00", "21:00", "08:00", "Europe/Berlin", "2026-07-15T06:00:00+00:00"),
    ("2026-07-15T12:00:00+00:00", "21:00", "08:00", "Europe/Berlin", None),
    # across the spring-forward night (29 March 2026): ends 08:00 CEST = 06:00 UTC
    ("2026-03-28T21:00:00+00:00", "21:00", "08:00", "Europe/Berlin", "2026-03-29T06:00:00+00:00"),
    # across the fall-back night (25 October 2026): ends 08:00 CET = 07:00 UTC
    ("2026-10-24T20:00:00+00:00", "21:00", "08:00", "Europe/Berlin", "2026-10-25T07:00:00+00:00"),
    # an end that the spring-forward gap skips (02:30 does not exist): the instant after the gap
    ("2026-03-29T00:30:00+00:00", "01:00", "02:30", "Europe/Berlin", "2026-03-29T01:30:00+00:00"),
    # UTC−10 (Honolulu, no DST): 22:00 local is 08:00 UTC
    ("2026-06-01T08:00:00+00:00", "21:00", "08:00", "Pacific/Honolulu", "2026-06-01T18:00:00+00:00"),
    ("2026-06-01T06:59:00+00:00", "21:00", "08:00", "Pacific/Honolulu", None),  # 20:59 local
    # UTC+5:45 (Kathmandu): 02:15 local
    ("2026-06-01T20:30:00+00:00", "21:00", "08:00", "Asia/Kathmandu", "2026-06-02T02:15:00+00:00"),
    # UTC+14 (Kiritimati): 23:00 local on 2 June is 09:00 UTC on 2 June; ends 08:00 on 3 June
    ("2026-06-02T09:00:00+00:00", "21:00", "08:00", "Pacific/Kiritimati", "2026-06-02T18:00:00+00:00"),
    # a window within one day
    ("2026-06-01T13:00:00+00:00", "12:00", "14:00", "UTC", "2026-06-01T14:00:00+00:00"),
    ("2026-06-01T14:00:00+00:00", "12:00", "14:00", "UTC", None),
])
def test_quiet_hours_end_in_the_recipients_time_zone(now, start, end, timezone, expected):
    found = evaluation.quiet_hours_end(now=at(now), start=time.fromisoformat(start),
                                       end=time.fromisoformat(end), timezone=timezone)
    assert found == (at(expected) if expected else None)


@pytest.mark.parametrize(("kind", "priority", "quiet", "caps"), [
    (Kind.COMMERCIAL, Priority.HIGH, False, False),
    (Kind.COMMERCIAL, Priority.CRITICAL, True, True),
    (Kind.TRANSACTIONAL, Priority.LOW, True, True),
    (Kind.PRODUCT, Priority.NORMAL, False, False),
])
def test_priority_and_kind_decide_bypass(kind, priority, quiet, caps):
    category = Category(key="x", kind=kind)
    assert evaluation.bypasses_quiet_hours(category=category, priority=priority) is quiet
    assert evaluation.bypasses_caps(category=category, priority=priority, exempt_transactional=True) is caps


ALL_DAY = Cap(scope=Cap.Scope.ALL, period="day", limit=3)
SMS_DAY = Cap(scope=Cap.Scope.CHANNEL, key="sms", period="day", limit=2)
MARKETING_WEEK = Cap(scope=Cap.Scope.CATEGORY, key="marketing", period="week", limit=1)
BILLING_DAY = Cap(scope=Cap.Scope.CATEGORY, key="billing", period="day", limit=1)
BILLING = Category(key="billing", kind=Kind.TRANSACTIONAL)


@pytest.mark.parametrize(("cap", "category", "channel", "priority", "exempt", "applies"), [
    (ALL_DAY, MARKETING, "email", Priority.NORMAL, True, True),
    (ALL_DAY, MARKETING, "sms", Priority.LOW, True, True),
    (ALL_DAY, MARKETING, "email", Priority.CRITICAL, True, False),  # critical bypasses every cap
    (ALL_DAY, BILLING, "email", Priority.NORMAL, True, False),  # transactional exempt by default
    (ALL_DAY, BILLING, "email", Priority.NORMAL, False, True),  # … unless the tenant says otherwise
    (SMS_DAY, MARKETING, "sms", Priority.HIGH, True, True),
    (SMS_DAY, MARKETING, "email", Priority.HIGH, True, False),  # another channel
    (MARKETING_WEEK, MARKETING, "push", Priority.NORMAL, True, True),
    (MARKETING_WEEK, DIGEST, "email", Priority.NORMAL, True, False),  # another category
    (MARKETING_WEEK, MARKETING, "email", Priority.CRITICAL, True, False),
    (BILLING_DAY, BILLING, "email", Priority.NORMAL, True, False),
    (BILLING_DAY, BILLING, "email", Priority.NORMAL, False, True),
])
def test_which_caps_hold_a_message(cap, category, channel, priority, exempt, applies):
    assert evaluation.cap_applies(cap=cap, category=category, channel=channel, priority=priority,
                                  exempt_transactional=exempt) is applies


EARLY, LATE = at("2030-01-15T10:00"), at("2030-01-16T09:00")
WAIT = Cap(scope=Cap.Scope.ALL, period="day", limit=3, action="defer", low_action="drop")
DROP = Cap(scope=Cap.Scope.CHANNEL, key="sms", period="week", limit=9, action="drop", low_action="drop")
WAIT_ALWAYS = Cap(scope=Cap.Scope.CATEGORY, key="marketing", period="week", limit=1)


@pytest.mark.parametrize(("reached", "priority", "expected"), [
    ([], Priority.NORMAL, None),
    ([(WAIT, EARLY)], Priority.NORMAL, (WAIT, "defer", EARLY)),
    ([(WAIT, EARLY)], Priority.HIGH, (WAIT, "defer", EARLY)),
    ([(WAIT, EARLY)], Priority.LOW, (WAIT, "drop", EARLY)),  # low priority per low_action
    ([(WAIT, EARLY), (WAIT_ALWAYS, LATE)], Priority.NORMAL, (WAIT_ALWAYS, "defer", LATE)),  # latest room
    ([(WAIT_ALWAYS, LATE), (WAIT, EARLY)], Priority.LOW, (WAIT, "drop", EARLY)),  # a drop wins
    ([(WAIT, EARLY), (DROP, LATE)], Priority.NORMAL, (DROP, "drop", LATE)),
])
def test_the_cap_that_decides_and_its_action_per_priority(reached, priority, expected):
    assert evaluation.cap_verdict(reached=reached, priority=priority) == expected


def test_a_cap_names_itself_for_the_timeline():
    assert [c.words() for c in (ALL_DAY, SMS_DAY, MARKETING_WEEK)] == [
        "3 per day", "2 per day on sms", "1 per week for marketing"]
