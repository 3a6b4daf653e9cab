"""Flag rules: "hold category X while flag F is set" — an event sets the flag, another clears it,
or it expires."""

import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from apps.core import clock
from apps.delivery.models import ProviderConfig
from apps.events.services import events_process
from apps.events.tests.factories import EventFactory
from apps.messaging import pipeline, services
from apps.messaging.models import Message
from apps.policy.models import FlagRule, Kind, RecipientFlag
from apps.policy.tests.factories import CategoryFactory
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.models import Role
from apps.tenants.tests.factories import TenantFactory, staff_member

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


def test_the_clearing_event_releases_the_messages_the_flag_holds_at_once(tenant):
    flag_rule(tenant)
    recipient = RecipientFactory(tenant=tenant)
    event(recipient, "checkout.started")
    held = [send(recipient, "cart") for _ in range(2)]
    later = send(recipient, "cart", send_at=clock.now() + timedelta(days=1))  # scheduled by its sender
    other = send(RecipientFactory(tenant=tenant), "cart", send_at=clock.now() + timedelta(days=1))
    assert {m.status for m in held} == {"scheduled"} and later.status == "scheduled"
    event(recipient, "checkout.finished")  # no clock travel: not at the next 15-minute check
    for message in held:
        message.refresh_from_db()
        assert (message.status, message.next_attempt_at) == ("queued", None)
        assert message.timeline.last().reason == "released: in-checkout was cleared"
    for message in (later, other):
        message.refresh_from_db()
        assert message.status == "scheduled"
    pipeline.message_send(message_id=held[0].pk)
    held[0].refresh_from_db()
    assert held[0].status == "sent"


def test_a_message_held_by_another_flag_is_not_released(tenant):
    flag_rule(tenant)
    flag_rule(tenant, name="Hold carts while browsing", flag="browsing", set_by_event="browse.started",
              cleared_by_event="browse.ended")
    recipient = RecipientFactory(tenant=tenant)
    event(recipient, "browse.started")
    held = send(recipient, "cart")
    assert held.timeline.last().detail["flag"] == "browsing"
    event(recipient, "checkout.started")
    event(recipient, "checkout.finished")
    held.refresh_from_db()
    assert held.status == "scheduled"


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


def test_the_dry_run_shows_who_has_the_flag_and_what_it_would_hold_without_changing_anything(tenant, client):
    rule = flag_rule(tenant, action=FlagRule.Action.SUPPRESS, expires_after_minutes=60)
    ada, bo, cy = (RecipientFactory(tenant=tenant, external_id=name) for name in ("ada", "bo", "cy"))
    charlie = RecipientFactory(tenant=TenantFactory(), external_id="charlie")  # another tenant's
    for recipient in (ada, bo, charlie):
        RecipientFlag.objects.create(tenant=recipient.tenant, recipient=recipient, flag="in-checkout",
                                     set_at=clock.now())
    RecipientFlag.objects.create(tenant=tenant, recipient=cy, flag="in-checkout", set_at=clock.now(),
                                 expires_at=clock.now())  # expired

    def scheduled(recipient, category, **fields):
        return services.message_create(message=Message(
            tenant=recipient.tenant, recipient=recipient, channels=["email"], category=category,
            send_at=clock.now() + timedelta(days=1), content={"email": {"subject": "Hi", "text": "Hello"}},
            dedupe_key=f"t:{uuid.uuid4()}", **fields))

    would = [scheduled(ada, "cart"), scheduled(bo, "cart")]
    scheduled(ada, "billing")  # another category
    scheduled(ada, "cart", priority="critical")
    scheduled(cy, "cart")
    scheduled(charlie, "cart")
    client.force_login(staff_member(tenant=tenant, role=Role.TENANT_ADMIN))
    page = client.get(reverse("admin:policy_flagrule_change", args=[rule.pk])).content.decode()
    assert ("2 recipient(s) have in-checkout set now; this rule would suppress 2 of their queued or "
            "scheduled messages of cart (nothing is changed here).") in page
    for message in would:
        assert f"message #{message.pk}</a>: {message.recipient.external_id}, cart, scheduled" in page
    assert {m.status for m in Message.objects.all()} == {"scheduled"}
    assert RecipientFlag.objects.count() == 4
