"""The consumer, the scheduler and cancellation, on the database, with tick() called directly."""

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from apps.core import clock
from apps.core.errors import InvalidInput
from apps.core.services import tick
from apps.delivery.models import ProviderConfig
from apps.events.models import Event
from apps.events.services import EventDraft, events_process, events_record
from apps.journeys import services
from apps.journeys.models import Journey, JourneyRun
from apps.journeys.tests.factories import ABANDONED_CART, active_journey, templates
from apps.messaging import pipeline
from apps.messaging.models import Message
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant():
    tenant = TenantFactory()
    templates(tenant, "cart-reminder", "cart-mail", "welcome", "nudge", "tips", "thanks")
    for channel in ("email", "sms"):
        ProviderConfig.objects.create(tenant=tenant, name=f"log-{channel}", channel=channel, kind="log")
    return tenant


@pytest.fixture
def ada(tenant):
    return RecipientFactory(tenant=tenant, external_id="ada", phone="+14155550101", timezone="Europe/Berlin")


def send_event(tenant, recipient, name, cancellation_key="", **properties):
    events_record(tenant=tenant, source=Event.Source.API, drafts=[EventDraft(
        name=name, recipient_id=recipient.pk, properties=properties, cancellation_key=cancellation_key)])
    events_process()


def messages(recipient):
    return list(Message.objects.filter(recipient=recipient).order_by("id"))


def test_abandoned_cart_delays_sends_in_the_morning_and_goes_through_the_pipeline(tenant, ada, clock_travel):
    journey = active_journey(tenant, ABANDONED_CART)
    send_event(tenant, ada, "cart.abandoned", cart_id="c1", total=4200)
    run = JourneyRun.objects.get(recipient=ada)
    assert (run.status, run.current_step) == ("active", "later") and not messages(ada)

    clock_travel(seconds=44 * 60)
    tick()
    assert not messages(ada)
    clock_travel(seconds=60)
    tick()
    [sms] = messages(ada)
    assert (sms.template_key, sms.channels, sms.dedupe_key) == ("cart-reminder", ["sms"], f"run:{run.pk}:sms")
    assert sms.journey_run == run and sms.journey_step.key == "sms" and sms.source == "journey"
    pipeline.messages_send(message_ids=[sms.pk])
    sms.refresh_from_db()
    assert sms.status == "sent" and sms.template_version is not None and sms.rendered

    run.refresh_from_db()
    # The next 09:00 where Ada lives.
    local_due = run.due_at.astimezone(ZoneInfo("Europe/Berlin"))
    assert run.current_step == "morning" and (local_due.hour, local_due.minute) == (9, 0)
    assert timedelta(0) < run.due_at - clock.now() <= timedelta(days=1)
    clock_travel(seconds=(run.due_at - clock.now()).total_seconds())
    tick()
    tick()  # a second tick does nothing more
    assert [m.template_key for m in messages(ada)] == ["cart-reminder", "cart-mail"]
    run.refresh_from_db()
    assert run.status == "completed"
    assert [(s.step.key, s.outcome) for s in run.path.select_related("step")] == [
        ("later", "passed"), ("sms", "passed"), ("morning", "passed"), ("mail", "passed")]
    assert journey.runs.count() == 1


def test_an_exit_event_while_waiting_cancels_the_scheduled_step_and_counts_the_goal_once(
        tenant, ada, clock_travel):
    active_journey(tenant, ABANDONED_CART)
    send_event(tenant, ada, "cart.abandoned")
    send_event(tenant, ada, "order.completed", order_id="o1")
    run = JourneyRun.objects.get(recipient=ada)
    assert (run.status, run.due_at, run.end_reason) == ("exited", None, "Exit event order.completed")
    converted = run.converted_at
    assert converted is not None
    send_event(tenant, ada, "order.completed", order_id="o2")
    run.refresh_from_db()
    assert run.converted_at == converted  # counted once

    clock_travel(seconds=2 * 86400)
    tick()
    assert not messages(ada)


WAIT = {
    "trigger": {"event": "order.placed"},
    "reentry": {"rule": "every_time"},
    "steps": [
        {"id": "paid", "type": "wait", "event": "order.paid", "timeout": "3d", "on_match": "thanks",
         "on_timeout": "nudge",
         "conditions": {"field": "event.properties.order_id", "op": "eq",
                        "value": {"ref": "trigger.properties.order_id"}}},
        {"id": "thanks", "type": "send", "template": "thanks", "channels": ["email"]},
        {"id": "nudge", "type": "send", "template": "nudge", "channels": ["sms"]},
    ],
}


def test_wait_for_event_matches_the_same_order_only_else_times_out(tenant, ada, clock_travel):
    active_journey(tenant, WAIT)
    send_event(tenant, ada, "order.placed", order_id="A")
    send_event(tenant, ada, "order.placed", order_id="B")
    send_event(tenant, ada, "order.paid", order_id="A")
    assert [m.template_key for m in messages(ada)] == ["thanks"]
    run_a, run_b = JourneyRun.objects.filter(recipient=ada).order_by("id")
    assert run_a.status == "completed" and run_a.context["events"]["paid"]["properties"] == {"order_id": "A"}
    assert run_b.status == "waiting"

    clock_travel(seconds=3 * 86400)
    tick()
    assert [m.template_key for m in messages(ada)] == ["thanks", "nudge"]
    assert [m.journey_run_id for m in messages(ada)] == [run_a.pk, run_b.pk]


@pytest.mark.parametrize(("rule", "entries"), [
    ({"rule": "once"}, [1, 1, 1]),
    ({"rule": "one_at_a_time"}, [1, 1, 2]),
    ({"rule": "every_time"}, [1, 2, 3]),
    ({"rule": "cooldown", "cooldown": "2d"}, [1, 1, 2]),
])
def test_re_entry_rules(tenant, ada, clock_travel, rule, entries):
    active_journey(tenant, {**WAIT, "reentry": rule})
    seen = []
    for _ in range(2):
        send_event(tenant, ada, "order.placed", order_id="A")
        seen.append(JourneyRun.objects.filter(recipient=ada).count())
    clock_travel(seconds=3 * 86400 + 60)
    tick()  # the first runs time out
    send_event(tenant, ada, "order.placed", order_id="A")
    seen.append(JourneyRun.objects.filter(recipient=ada).count())
    assert seen == entries


def test_trigger_conditions_on_event_properties_and_recipient_attributes(tenant, ada):
    ada.attributes = {"plan": "pro"}
    ada.save()
    bob = RecipientFactory(tenant=tenant, attributes={"plan": "free"})
    active_journey(tenant, {**WAIT, "trigger": {"event": "order.placed", "conditions": {"all": [
        {"field": "trigger.properties.total", "op": "gte", "value": 100},
        {"field": "recipient.attributes.plan", "op": "eq", "value": "pro"}]}}})
    send_event(tenant, ada, "order.placed", total=50)
    send_event(tenant, bob, "order.placed", total=500)
    assert not JourneyRun.objects.exists()
    send_event(tenant, ada, "order.placed", total=500)
    assert JourneyRun.objects.filter(recipient=ada).count() == 1


def test_cancellation_key_ends_the_matching_runs_only(tenant, ada):
    other_tenant = TenantFactory()
    active_journey(tenant, WAIT)
    send_event(tenant, ada, "order.placed", cancellation_key="order-A", order_id="A")
    send_event(tenant, ada, "order.placed", cancellation_key="order-B", order_id="B")
    assert services.journey_runs_cancel(tenant=other_tenant, cancellation_key="order-A") == 0
    assert services.journey_runs_cancel(tenant=tenant, cancellation_key="order-A") == 1
    statuses = dict(JourneyRun.objects.values_list("cancellation_key", "status"))
    assert statuses == {"order-A": "cancelled", "order-B": "waiting"}
    with pytest.raises(InvalidInput):
        services.journey_runs_cancel(tenant=tenant, cancellation_key="")


def test_branch_on_history_and_on_an_earlier_messages_status(tenant, ada, clock_travel):
    welcome = {
        "trigger": {"event": "signup"},
        "steps": [
            {"id": "welcome", "type": "send", "template": "welcome", "channels": ["email"], "next": "day"},
            {"id": "day", "type": "delay", "duration": "1d", "next": "check"},
            {"id": "check", "type": "branch", "default": "tips", "paths": [
                {"conditions": {"field": "messages.welcome.status", "op": "in", "value": ["failed"]},
                 "next": "nudge"},
                {"conditions": {"field": "history.project.created", "op": "not_exists"}, "next": "nudge"}]},
            {"id": "nudge", "type": "send", "template": "nudge", "channels": ["sms"]},
            {"id": "tips", "type": "send", "template": "tips", "channels": ["email"]},
        ]}
    active_journey(tenant, welcome)
    bob = RecipientFactory(tenant=tenant, phone="+14155550102")
    cy = RecipientFactory(tenant=tenant, phone="+14155550103")
    for person in (ada, bob, cy):
        send_event(tenant, person, "signup")
    send_event(tenant, bob, "project.created")
    Message.objects.filter(recipient=cy).update(status="failed")
    clock_travel(seconds=86400)
    tick()
    assert [m.template_key for m in messages(ada)] == ["welcome", "nudge"]
    assert [m.template_key for m in messages(bob)] == ["welcome", "tips"]
    assert [m.template_key for m in messages(cy)] == ["welcome", "nudge"]


def test_a_new_version_does_not_move_runs_already_inside(tenant, ada, clock_travel):
    journey = active_journey(tenant, ABANDONED_CART)
    send_event(tenant, ada, "cart.abandoned")
    journey.definition = {**ABANDONED_CART, "steps": [
        {"id": "later", "type": "delay", "duration": "45m", "next": "mail"},
        {"id": "mail", "type": "send", "template": "tips", "channels": ["email"]}]}
    journey.save()
    services.journey_activate(journey=journey)
    bob = RecipientFactory(tenant=tenant, phone="+14155550102")
    send_event(tenant, bob, "cart.abandoned")
    clock_travel(seconds=46 * 60)
    tick()
    assert [m.template_key for m in messages(ada)] == ["cart-reminder"]
    assert [m.template_key for m in messages(bob)] == ["tips"]
    assert sorted(JourneyRun.objects.values_list("version__number", flat=True)) == [1, 2]


def test_a_re_executed_step_never_sends_twice(tenant, ada, clock_travel):
    active_journey(tenant, ABANDONED_CART)
    send_event(tenant, ada, "cart.abandoned")
    run = JourneyRun.objects.get(recipient=ada)
    clock_travel(seconds=45 * 60)
    tick()
    # As if the step's transaction had committed its message but the run were read again before
    # its own update (a crash between them cannot happen: one transaction; this checks the key).
    JourneyRun.objects.filter(pk=run.pk).update(current_step="later", due_at=clock.now(),
                                                context={**run.context, "visits": {"later": 1}})
    tick()
    assert [m.dedupe_key for m in messages(ada)] == [f"run:{run.pk}:sms"]


def test_pause_holds_runs_and_blocks_entries_resume_catches_up_archive_cancels(tenant, ada, clock_travel):
    journey = active_journey(tenant, ABANDONED_CART)
    send_event(tenant, ada, "cart.abandoned")
    services.journey_pause(journey=journey)
    bob = RecipientFactory(tenant=tenant, phone="+14155550102")
    send_event(tenant, bob, "cart.abandoned")
    clock_travel(seconds=3600)
    tick()
    assert not Message.objects.exists() and not JourneyRun.objects.filter(recipient=bob).exists()
    services.journey_resume(journey=journey)
    tick()
    assert [m.template_key for m in messages(ada)] == ["cart-reminder"]
    assert services.journey_archive(journey=journey) == 1
    assert JourneyRun.objects.get(recipient=ada).status == "cancelled"
    assert Journey.objects.get(pk=journey.pk).status == "archived"


def test_an_invalid_journey_cannot_be_activated(tenant):
    journey = Journey.objects.create(tenant=tenant, key="bad", name="Bad", definition={
        "trigger": {"event": "x"},
        "steps": [{"id": "a", "type": "send", "template": "never-published", "channels": ["sms"]}]})
    with pytest.raises(InvalidInput) as error:
        services.journey_activate(journey=journey)
    assert "steps.a.template" in error.value.fields
    journey.refresh_from_db()
    assert journey.status == "draft" and journey.live_version is None


def test_events_in_one_batch_start_a_run_then_move_it_on(tenant, ada):
    active_journey(tenant, WAIT)
    events_record(tenant=tenant, source=Event.Source.API, drafts=[
        EventDraft(name="order.placed", recipient_id=ada.pk, properties={"order_id": "A"}),
        EventDraft(name="order.paid", recipient_id=ada.pk, properties={"order_id": "A"})])
    events_process()
    run = JourneyRun.objects.get(recipient=ada)
    assert run.status == "completed"
    assert [(s.step.key, s.outcome, s.left_at is not None) for s in run.path.select_related("step")] == [
        ("paid", "matched", True), ("thanks", "passed", True)]
    assert [m.template_key for m in messages(ada)] == ["thanks"]


def test_an_exit_event_cancels_the_runs_unsent_messages_but_an_exit_step_does_not(tenant, ada):
    exits = {"trigger": {"event": "order.placed"}, "reentry": {"rule": "every_time"},
             "exit_events": [{"event": "order.cancelled",
                              "conditions": {"field": "event.properties.order_id", "op": "eq",
                                             "value": {"ref": "trigger.properties.order_id"}}}],
             "steps": [
                 {"id": "thanks", "type": "send", "template": "thanks", "channels": ["email"],
                  "next": "paid"},
                 {"id": "paid", "type": "wait", "event": "order.paid", "timeout": "1d", "on_match": "done"},
                 {"id": "done", "type": "exit"}]}
    active_journey(tenant, exits)
    send_event(tenant, ada, "order.placed", order_id="A")
    send_event(tenant, ada, "order.placed", order_id="B")
    # No worker here: both thank-you messages are still queued.
    send_event(tenant, ada, "order.cancelled", order_id="A")
    send_event(tenant, ada, "order.paid")
    a, b = JourneyRun.objects.filter(recipient=ada).order_by("id")
    assert (a.status, b.status) == ("exited", "exited")
    assert a.end_reason == "Exit event order.cancelled" and b.end_reason == "Exit step"
    assert [m.status for m in messages(ada)] == ["cancelled", "queued"]
    assert messages(ada)[0].timeline.last().reason_code == "journey_stopped"
