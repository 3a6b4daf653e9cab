"""Flag rules: "hold category X while flag F is set" — an event sets the flag, another clears it,
or it expires."""

import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from apps.core import clock
from apps.delivery.models import ProviderConfig
from apps.events.services import events_process
from apps.events.tests.factories import EventFactory
from apps.messaging import pipeline, services
from apps.messaging.models import Message
from apps.policy.models import FlagRule, Kind, RecipientFlag
from apps.policy.tests.factories import CategoryFactory
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant():
    tenant = TenantFactory()
    ProviderConfig.objects.create(tenant=tenant, name="mail", channel="email", kind="log")
    CategoryFactory(tenant=tenant, key="cart", kind=Kind.COMMERCIAL)
    CategoryFactory(tenant=tenant, key="billing", kind=Kind.TRANSACTIONAL)
    return tenant


def flag_rule(tenant, **fields):
    return FlagRule.objects.create(**{
        "tenant": tenant, "name": "No cart reminders during checkout", "flag": "in-checkout",
        "categories": ["cart"], "set_by_event": "checkout.started", "cleared_by_event": "checkout.finished",
        **fields})


def event(recipient, name):
    EventFactory(tenant=recipient.tenant, recipient=recipient, name=name, occurred_at=clock.now(),
                 received_at=clock.now())
    events_process()


def send(recipient, category, **fields):
    message = services.message_create(message=Message(
        tenant=recipient.tenant, recipient=recipient, channels=["email"], category=category,
        content={"email": {"subject": "Hi", "text": "Hello"}}, dedupe_key=f"test:{uuid.uuid4()}", **fields))
    pipeline.message_send(message_id=message.pk)
    message.refresh_from_db()
    return message


def test_a_flag_set_by_one_event_holds_the_category_until_another_clears_it(tenant, clock_travel):
    flag_rule(tenant)
    recipient = RecipientFactory(tenant=tenant)
    assert send(recipient, "cart").status == "sent"
    event(recipient, "checkout.started")
    held = send(recipient, "cart")
    assert held.status == "scheduled"
    assert held.timeline.last().reason_code == "flag"
    assert held.timeline.last().reason.startswith("deferred: cart is held while in-checkout is set; it is "
                                                  "checked again at ")
    assert send(recipient, "billing").status == "sent"  # another category
    assert send(recipient, "cart", priority="critical").status == "sent"
    assert send(RecipientFactory(tenant=tenant), "cart").status == "sent"  # another recipient
    event(recipient, "checkout.finished")
    assert not RecipientFlag.objects.exists()
    clock_travel(seconds=16 * 60)
    services.messages_release_due()
    pipeline.message_send(message_id=held.pk)
    held.refresh_from_db()
    assert held.status == "sent"


def test_a_flag_expires_and_the_held_message_is_due_then(tenant, clock_travel):
    flag_rule(tenant, cleared_by_event="", expires_after_minutes=30)
    recipient = RecipientFactory(tenant=tenant)
    event(recipient, "checkout.started")
    set_at = RecipientFlag.objects.get().set_at
    held = send(recipient, "cart")
    assert held.next_attempt_at == set_at + timedelta(minutes=30)
    assert "; it expires at " in held.timeline.last().reason
    clock_travel(seconds=31 * 60)
    assert send(recipient, "cart").status == "sent"


def test_the_suppress_action_drops_the_message(tenant):
    flag_rule(tenant, action=FlagRule.Action.SUPPRESS)
    recipient = RecipientFactory(tenant=tenant)
    event(recipient, "checkout.started")
    dropped = send(recipient, "cart")
    assert dropped.status == "suppressed"
    assert dropped.timeline.last().reason == "suppressed: cart is held while in-checkout is set"


@pytest.mark.parametrize(("fields", "field"), [
    ({"cleared_by_event": "", "expires_after_minutes": None}, "expires_after_minutes"),
    ({"cleared_by_event": "checkout.started"}, "cleared_by_event"),
    ({"categories": []}, "categories"),
])
def test_a_flag_rule_that_could_never_end_or_hold_anything_is_refused(tenant, fields, field):
    rule = FlagRule(**{"tenant": tenant, "name": "r", "flag": "f", "categories": ["cart"],
                       "set_by_event": "checkout.started", "cleared_by_event": "checkout.finished", **fields})
    with pytest.raises(ValidationError) as error:
        rule.full_clean()
    assert field in error.value.message_dict
