"""Frequency caps per channel and per category, inherited down the tenant hierarchy, with the
action over a cap per priority (docs/policy.md)."""

from datetime import timedelta

import pytest

from apps.core import clock
from apps.delivery.models import ProviderConfig
from apps.messaging import pipeline, services
from apps.messaging.models import Message
from apps.policy.models import Cap, Kind, PolicySettings
from apps.policy.tests.factories import CategoryFactory, PolicySettingsFactory
from apps.policy.tests.test_pipeline_policy import last, send
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.models import Role
from apps.tenants.tests.factories import TenantFactory, staff_member
from tests.fixtures.servers import FakeProviderServer, postmark

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant():
    tenant = TenantFactory()
    for channel in ("email", "sms"):
        ProviderConfig.objects.create(tenant=tenant, name=f"{channel}-log", channel=channel, kind="log")
    CategoryFactory(tenant=tenant, key="billing", kind=Kind.TRANSACTIONAL)
    CategoryFactory(tenant=tenant, key="product-updates", kind=Kind.PRODUCT)
    CategoryFactory(tenant=tenant, key="marketing", kind=Kind.COMMERCIAL)
    return tenant


@pytest.fixture
def recipient(tenant):
    return RecipientFactory(tenant=tenant, email="ada@example.com", phone="+14155550101",
                            timezone="Europe/Berlin")


def cap(tenant, **fields):
    return Cap.objects.create(tenant=tenant, **{"scope": "all", "period": "day", "limit": 1, **fields})


def test_a_cap_of_2_sms_per_day_defers_the_3rd_sms_and_lets_email_through(tenant, recipient):
    cap(tenant, scope="channel", key="sms", limit=2)
    start = clock.now()
    assert [send(recipient, channels=["sms"]).status for _ in range(2)] == ["sent", "sent"]
    third = send(recipient, channels=["sms"])
    assert third.status == "scheduled"
    assert last(third).reason_code == "frequency_cap"
    assert last(third).reason.startswith("deferred: frequency cap of 2 per day on sms reached until ")
    assert start + timedelta(days=1) - timedelta(seconds=5) < third.next_attempt_at
    assert last(third).detail["scope"] == "channel" and last(third).detail["count"] == 2
    assert send(recipient, channels=["email"]).status == "sent"
    # routed to email (sms is the second choice), so the sms cap does not hold it
    assert send(recipient, channels=["email", "sms"]).status == "sent"
    other = RecipientFactory(tenant=tenant, phone="+14155550199")
    assert send(other, channels=["sms"]).status == "sent"  # caps are per recipient


def test_a_category_cap_counts_only_its_category(tenant, recipient):
    cap(tenant, scope="category", key="marketing", period="week", limit=1)
    assert send(recipient, category="marketing").status == "sent"
    assert send(recipient, category="product-updates").status == "sent"
    held = send(recipient, category="marketing", channels=["sms"])  # any channel
    assert held.status == "scheduled"
    assert last(held).reason.startswith("deferred: frequency cap of 1 per week for marketing reached until ")
    assert send(recipient, category="product-updates").status == "sent"
    assert send(recipient, category="marketing", priority="critical").status == "sent"


def test_transactional_messages_are_exempt_unless_the_tenant_says_otherwise(tenant, recipient):
    cap(tenant, scope="channel", key="email", limit=1)
    assert send(recipient, channels=["email"]).status == "sent"
    assert send(recipient, category="billing", channels=["email"]).status == "sent"
    assert send(recipient, channels=["email"]).status == "scheduled"
    PolicySettingsFactory(tenant=tenant, caps_exempt_transactional=False)
    assert send(recipient, category="billing", channels=["email"]).status == "scheduled"


def test_over_a_cap_low_priority_drops_while_normal_and_high_wait(tenant, recipient):
    cap(tenant, scope="category", key="marketing", action="defer", low_action="drop")
    assert send(recipient, category="marketing").status == "sent"
    low = send(recipient, category="marketing", priority="low")
    assert low.status == "suppressed"
    assert last(low).reason == "suppressed: frequency cap of 1 per day for marketing reached"
    assert last(low).detail["priority"] == "low"
    assert send(recipient, category="marketing", priority="normal").status == "scheduled"
    assert send(recipient, category="marketing", priority="high").status == "scheduled"
    assert send(recipient, category="marketing", priority="critical").status == "sent"


def test_with_two_caps_reached_a_message_waits_for_the_later_one(tenant, recipient):
    cap(tenant, scope="channel", key="sms", period="day", limit=1)
    cap(tenant, scope="all", period="week", limit=2)
    first = send(recipient, channels=["sms"])
    assert send(recipient, channels=["email"]).status == "sent"
    held = send(recipient, channels=["sms"])
    assert held.status == "scheduled"
    # the sms cap has room tomorrow, the weekly one in 7 days: waiting for tomorrow would only
    # meet the weekly cap again
    assert held.next_attempt_at == first.sent_at + timedelta(days=7)
    assert "frequency cap of 2 per week reached" in last(held).reason


def test_caps_are_inherited_and_settings_caps_still_apply(tenant):
    child = TenantFactory(parent=tenant)
    for channel in ("email", "sms"):
        ProviderConfig.objects.create(tenant=child, name=f"{channel}-log", channel=channel, kind="log")
    cap(tenant, scope="channel", key="sms", limit=1)
    PolicySettingsFactory(tenant=child, cap_per_day=2, cap_action=PolicySettings.CapAction.DROP)
    bo = RecipientFactory(tenant=child, email="bo@example.com", phone="+14155550102")
    assert send(bo, channels=["sms"]).status == "sent"
    assert send(bo, channels=["sms"]).status == "scheduled"  # the parent's sms cap
    assert send(bo, channels=["email"]).status == "sent"
    dropped = send(bo, channels=["email"])  # the child's settings: 2 a day, drop
    assert last(dropped).reason == "suppressed: frequency cap of 2 per day reached"
    assert send(RecipientFactory(tenant=tenant, phone="+14155550103"), channels=["sms"]).status == "sent"


@pytest.mark.parametrize(("fields", "error"), [
    ({"scope": "channel", "key": "fax"}, "Name one channel"),
    ({"scope": "category", "key": ""}, "Name the category key"),
    ({"scope": "category", "key": "nope"}, "Not a category of"),
    ({"scope": "all", "key": "sms"}, "Leave it blank"),
    ({"limit": "0"}, "A cap of 0 blocks everything"),
    ({"limit": "-1"}, "greater than or equal to 0"),
])
def test_the_admin_refuses_a_cap_that_makes_no_sense_naming_the_field(client, fields, error):
    alice = TenantFactory(name="Alice")
    CategoryFactory(tenant=alice, key="news")
    client.force_login(staff_member(tenant=alice, role=Role.TENANT_ADMIN))
    form = {"tenant": alice.pk, "scope": "channel", "key": "sms", "period": "day", "limit": "2",
            "action": "defer", "low_action": "drop"}
    response = client.post("/admin/policy/cap/add/", {**form, **fields})
    assert response.status_code == 200 and error in response.content.decode()
    assert not Cap.objects.exists()
    assert client.post("/admin/policy/cap/add/", form).status_code == 302
    assert Cap.objects.get().words() == "2 per day on sms"


def test_a_cap_is_admin_scoped_to_the_staff_users_tenants(client):
    alice, charlie = TenantFactory(name="Alice"), TenantFactory(name="Charlie")
    theirs = Cap.objects.create(tenant=charlie, scope="category", key="charlie-secret", limit=4)
    Cap.objects.create(tenant=alice, scope="category", key="alice-news", limit=4)
    client.force_login(staff_member(tenant=alice, role=Role.TENANT_ADMIN))
    page = client.get("/admin/policy/cap/").content.decode()
    assert "alice-news" in page and "charlie-secret" not in page
    assert client.get(f"/admin/policy/cap/{theirs.pk}/change/").status_code in (302, 404)


def test_a_cap_added_between_two_messages_applies_to_the_second(tenant, recipient):
    assert send(recipient).status == "sent"  # the tenant's policy is now cached in this process
    cap(tenant, limit=1)  # bumps the policy version in the same transaction
    assert send(recipient).status == "scheduled"


@pytest.fixture
def refusing_postmark():
    server = FakeProviderServer(postmark)  # refuses addresses at .invalid, permanently (422)
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize("sms_sent_before, expected", [(0, "sent"), (1, "scheduled")])
def test_a_failover_to_another_channel_meets_that_channels_cap(refusing_postmark, sms_sent_before, expected):
    tenant = TenantFactory()
    email = ProviderConfig(tenant=tenant, name="postmark", channel="email", kind="postmark",
                           from_email="hello@acme.example", settings={"api_url": refusing_postmark.url})
    email.set_credentials({"server_token": "pm-test-token"})
    email.save()
    ProviderConfig.objects.create(tenant=tenant, name="sms-log", channel="sms", kind="log")
    cap(tenant, scope="channel", key="sms", limit=1)
    recipient = RecipientFactory(tenant=tenant, email="ada@example.invalid", phone="+14155550101")
    for _ in range(sms_sent_before):
        assert send(recipient, category="general", channels=["sms"]).status == "sent"
    failover = send(recipient, category="general", channels=["email", "sms"])
    attempts = [(a.channel, a.outcome) for a in failover.attempt_rows.all()]
    assert attempts[0] == ("email", "permanent")
    assert failover.status == expected
    if expected == "scheduled":
        assert last(failover).reason.startswith("deferred: frequency cap of 1 per day on sms reached until ")
        rerouted = failover.timeline.get(status="rerouted")
        assert rerouted.detail["to"] == "sms"
    else:
        assert (failover.channel, attempts[1:]) == ("sms", [("sms", "accepted")])


def test_one_batch_for_two_recipients_counts_each_message_the_batch_sent_before_it(
        tenant, recipient, clock_travel):
    """messages_send decides a batch's caps in one transaction: each message counts those of its
    recipient that passed before it in the batch, as a later batch would."""
    cap(tenant, scope="channel", key="sms", limit=2)
    other = RecipientFactory(tenant=tenant, phone="+14155550199")
    earlier = send(other, channels=["sms"])  # other has 1 of its 2 already
    assert earlier.status == "sent"
    clock_travel(seconds=3600)
    messages = [services.message_create(message=Message(
        tenant=tenant, recipient=who, channels=["sms"], category="product-updates",
        content={"sms": {"text": "Hi"}}, dedupe_key=f"batch:{n}"))
        for n, who in enumerate([recipient, other] * 3)]
    started = clock.now()
    outcomes = pipeline.messages_send(message_ids=[m.pk for m in messages])
    finished = clock.now()
    statuses = [outcomes[m.pk].status for m in messages]
    assert statuses == ["sent", "sent", "sent", "scheduled", "scheduled", "scheduled"]
    deferred = Message.objects.get(pk=messages[3].pk)
    assert last(deferred).reason_code == "frequency_cap" and last(deferred).detail["count"] == 2
    # each waits for its own oldest sms to leave the window: other's from an hour ago, and the
    # recipient's from this batch
    assert deferred.next_attempt_at == earlier.sent_at + timedelta(days=1)
    room = Message.objects.get(pk=messages[4].pk).next_attempt_at - timedelta(days=1)
    assert started <= room <= finished
    assert Message.objects.filter(recipient=recipient, status="sent").count() == 2
