"""Policy inside the delivery pipeline: rerouting, suppression, quiet hours and caps, each
decision with its reason on the message's timeline."""

import uuid
from datetime import UTC, datetime, time, timedelta

import pytest

from apps.core import clock
from apps.delivery.models import ProviderConfig
from apps.messaging import pipeline, services
from apps.messaging.models import Message, Status
from apps.policy.models import Category, Kind, PolicySettings, Preference, SuppressedAddress
from apps.policy.tests.factories import CategoryFactory, PolicySettingsFactory
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant():
    tenant = TenantFactory()
    for channel in ("email", "sms"):
        ProviderConfig.objects.create(tenant=tenant, name=f"{channel}-log", channel=channel, kind="log")
    CategoryFactory(tenant=tenant, key="security", kind=Kind.TRANSACTIONAL, required=True)
    CategoryFactory(tenant=tenant, key="billing", kind=Kind.TRANSACTIONAL)
    CategoryFactory(tenant=tenant, key="product-updates", kind=Kind.PRODUCT)
    CategoryFactory(tenant=tenant, key="marketing", kind=Kind.COMMERCIAL)
    return tenant


@pytest.fixture
def recipient(tenant):
    return RecipientFactory(tenant=tenant, email="ada@example.com", phone="+14155550101",
                            timezone="Europe/Berlin")


def send(recipient, category="product-updates", channels=("email", "sms"), **fields):
    content = {"email": {"subject": "Hi", "text": "Hello"}, "sms": {"text": "Hi"}}
    message = services.message_create(message=Message(
        tenant=recipient.tenant, recipient=recipient, channels=list(channels), category=category,
        content={c: content[c] for c in channels}, dedupe_key=f"test:{uuid.uuid4()}", **fields))
    pipeline.message_send(message_id=message.pk)
    message.refresh_from_db()
    return message


def last(message):
    return message.timeline.last()


def travel_to(clock_travel, moment: datetime):
    clock_travel(seconds=(moment - clock.now()).total_seconds())


def test_a_muted_channel_reroutes_to_the_next_with_the_reason(recipient):
    Preference.objects.create(tenant=recipient.tenant, recipient=recipient,
                              channels={"product-updates": {"email": False}})
    message = send(recipient)
    assert (message.status, message.channel) == ("sent", "sms")
    rerouted = message.timeline.get(status="rerouted")
    assert rerouted.reason == ("rerouted: the recipient muted email for product-updates; sending by sms")


def test_every_channel_ruled_out_by_policy_suppresses_the_message_with_the_reasons(recipient):
    Preference.objects.create(tenant=recipient.tenant, recipient=recipient,
                              commercial_unsubscribed_at=clock.now())
    message = send(recipient, category="marketing")
    assert message.status == "suppressed"
    assert last(message).reason == ("suppressed: email: the recipient unsubscribed from commercial messages; "
                                    "sms: the recipient unsubscribed from commercial messages")
    assert not message.attempt_rows.exists()


def test_the_suppression_list_applies_even_to_required_categories(recipient):
    Preference.objects.create(tenant=recipient.tenant, recipient=recipient,
                              channels={"security": {"sms": False}})  # ignored: security is required
    SuppressedAddress.objects.create(tenant=recipient.tenant, channel="email", address="ada@example.com")
    message = send(recipient, category="security")
    assert (message.status, message.channel) == ("sent", "sms")
    assert "email address is on the suppression list" in message.timeline.get(status="rerouted").reason


def test_another_tenants_suppression_list_does_not_apply(recipient):
    SuppressedAddress.objects.create(tenant=TenantFactory(), channel="email", address="ada@example.com")
    assert send(recipient).channel == "email"


def test_quiet_hours_defer_to_the_end_of_the_window_and_the_message_is_decided_again(
        tenant, recipient, clock_travel):
    PolicySettingsFactory(tenant=tenant, quiet_start=time(21), quiet_end=time(8))
    travel_to(clock_travel, datetime(2030, 1, 15, 22, 0, tzinfo=UTC))  # 23:00 in Berlin
    message = send(recipient)
    assert message.status == "scheduled"
    assert message.next_attempt_at == datetime(2030, 1, 16, 7, 0, tzinfo=UTC)
    assert (last(message).reason_code, last(message).reason) == (
        "quiet_hours", "deferred: quiet hours until 08:00 Europe/Berlin")
    assert message.attempts == 0
    # transactional and critical messages are not held
    assert send(recipient, category="billing").status == "sent"
    assert send(recipient, priority="critical").status == "sent"
    travel_to(clock_travel, datetime(2030, 1, 16, 7, 0, tzinfo=UTC))
    assert services.messages_release_due() == 1
    pipeline.message_send(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == "sent"


def test_a_recipients_own_quiet_hours_override_the_tenants(tenant, recipient, clock_travel):
    PolicySettingsFactory(tenant=tenant, quiet_start=time(21), quiet_end=time(8))
    Preference.objects.create(tenant=tenant, recipient=recipient, quiet_start=time(12), quiet_end=time(14))
    travel_to(clock_travel, datetime(2030, 1, 15, 22, 0, tzinfo=UTC))
    assert send(recipient).status == "sent"
    travel_to(clock_travel, datetime(2030, 1, 16, 12, 0, tzinfo=UTC))  # 13:00 in Berlin
    message = send(recipient)
    assert last(message).reason == "deferred: quiet hours until 14:00 Europe/Berlin"


def test_a_cap_of_3_per_day_defers_the_4th_until_the_oldest_leaves_the_window(
        tenant, recipient, clock_travel):
    PolicySettingsFactory(tenant=tenant, cap_per_day=3)
    start = clock.now()
    assert [send(recipient).status for _ in range(3)] == ["sent"] * 3
    fourth = send(recipient, category="marketing")
    assert fourth.status == "scheduled"
    assert last(fourth).reason_code == "frequency_cap"
    assert last(fourth).reason.startswith("deferred: frequency cap of 3 per day reached until ")
    day = timedelta(days=1)
    assert start + day - timedelta(seconds=5) < fourth.next_attempt_at <= clock.now() + day
    # exempt: transactional kinds and critical priority
    assert send(recipient, category="billing").status == "sent"
    assert send(recipient, priority="critical").status == "sent"
    clock_travel(seconds=24 * 3600 + 1)
    services.messages_release_due()
    pipeline.message_send(message_id=fourth.pk)
    fourth.refresh_from_db()
    assert fourth.status == "sent"


def test_a_failed_send_frees_its_slot(tenant, recipient):
    PolicySettingsFactory(tenant=tenant, cap_per_day=1)
    first = send(recipient)
    assert send(recipient).status == "scheduled"
    Message.objects.filter(pk=first.pk).update(status=Status.FAILED)
    assert send(recipient).status == "sent"


def test_the_drop_action_suppresses_over_the_cap(tenant, recipient):
    PolicySettingsFactory(tenant=tenant, cap_per_week=1, cap_action=PolicySettings.CapAction.DROP)
    assert send(recipient).status == "sent"
    dropped = send(recipient)
    assert dropped.status == "suppressed"
    assert last(dropped).reason == "suppressed: frequency cap of 1 per week reached"


def test_editing_a_category_applies_to_the_very_next_message(tenant, recipient):
    assert send(recipient, category="marketing").channel == "email"
    marketing = Category.objects.get(tenant=tenant, key="marketing")
    marketing.channels_off = ["email"]
    marketing.save()
    assert send(recipient, category="marketing").channel == "sms"
