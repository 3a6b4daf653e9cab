"""Membership: the full recompute, incremental updates from events and profiles, the tick, and
journeys entered on joining and left on leaving."""

import pytest

from apps.core.services import tick
from apps.delivery.models import ProviderConfig
from apps.events.models import Event
from apps.events.services import EventDraft, events_process, events_record
from apps.journeys import services as journeys
from apps.journeys.models import JourneyRun, JourneyVersion
from apps.journeys.tests.factories import active_journey, templates
from apps.messaging.models import Message
from apps.recipients import services as recipients
from apps.recipients.tests.factories import RecipientFactory
from apps.segments import services
from apps.segments.models import Segment
from apps.segments.selectors import segment_member_ids
from apps.tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db
PRO = {"field": "recipient.attributes.plan", "op": "eq", "value": "pro"}
CHECKOUT_NO_ORDER = {"all": [{"field": "history.checkout.started", "op": "within_last_days", "value": 7},
                             {"field": "history.order.completed", "op": "not_exists"}]}


@pytest.fixture
def tenant():
    return TenantFactory()


def segment(tenant, key, cond, *, compute=True) -> Segment:
    seg = services.segment_save(segment=Segment(tenant=tenant, key=key, name=key, conditions=cond))
    if compute:
        services.segment_recompute(seg)
    seg.refresh_from_db()
    return seg


def set_plan(recipient, plan: str) -> None:
    recipients.recipient_upsert(tenant=recipient.tenant, external_id=recipient.external_id,
                                profile={"attributes": {"plan": plan}})


def members(seg) -> set[int]:
    return set(segment_member_ids(seg, limit=10_000))


def send_event(tenant, recipient, name):
    events_record(tenant=tenant, source=Event.Source.API,
                  drafts=[EventDraft(name=name, recipient_id=recipient.pk)])
    events_process()


def test_full_recompute_in_chunks_adds_and_removes_and_counts(tenant):
    pros = [RecipientFactory(tenant=tenant, attributes={"plan": "pro"}) for _ in range(7)]
    free = [RecipientFactory(tenant=tenant, attributes={"plan": "free"}) for _ in range(5)]
    RecipientFactory(attributes={"plan": "pro"})  # another tenant's
    seg = segment(tenant, "pro-users", PRO, compute=False)
    assert seg.status == Segment.Status.COMPUTING
    assert services.segment_recompute(seg, chunk_size=3) == 7
    seg.refresh_from_db()
    assert members(seg) == {r.pk for r in pros}
    assert (seg.status, seg.member_count, seg.progress_done, seg.progress_total) == ("ready", 7, 12, 12)
    # Rows changed behind its back (a bulk update): the next recompute converges.
    type(pros[0]).objects.filter(pk__in=[pros[0].pk, free[0].pk]).update(attributes={"plan": "x"})
    type(pros[0]).objects.filter(pk=free[1].pk).update(attributes={"plan": "pro"})
    assert services.segment_recompute(seg, chunk_size=4) == 7
    assert members(seg) == {r.pk for r in pros[1:]} | {free[1].pk}


def test_profile_changes_move_members_at_once(tenant):
    ada = RecipientFactory(tenant=tenant, attributes={"plan": "free"})
    seg = segment(tenant, "pro-users", PRO)
    everyone = segment(tenant, "all-recipients", {})
    assert members(seg) == set() and members(everyone) == {ada.pk}
    set_plan(ada, "pro")
    assert members(seg) == {ada.pk}
    recipients.recipients_apply_profiles(tenant=tenant, profiles={ada.pk: {"attributes": {"plan": "team"}}})
    assert members(seg) == set()
    # New recipients join the segments that hold them; an erased one leaves every segment.
    ids = recipients.recipients_resolve_many(tenant=tenant, external_ids=["new-1", "new-2"])
    assert members(everyone) == {ada.pk, *ids.values()}
    recipients.recipient_erase(recipient=ada)
    assert members(everyone) == set(ids.values())
    everyone.refresh_from_db()
    assert everyone.member_count == 2


def test_events_move_history_segments(tenant, clock_travel):
    ada, bob = RecipientFactory(tenant=tenant), RecipientFactory(tenant=tenant)
    seg = segment(tenant, "checkout-no-order", CHECKOUT_NO_ORDER)
    send_event(tenant, ada, "checkout.started")
    send_event(tenant, bob, "checkout.started")
    assert members(seg) == {ada.pk, bob.pk}
    send_event(tenant, bob, "order.completed")
    assert members(seg) == {ada.pk}
    # Time alone: a week later Ada drifts out, on the tick's recompute (recompute_segment runs on a
    # worker; here the task body is called once the tick asked for it).
    clock_travel(seconds=8 * 86400)
    tick()
    seg.refresh_from_db()
    assert seg.status == Segment.Status.COMPUTING
    services.segment_recompute(seg)
    assert members(seg) == set()


def test_profiles_that_come_with_events_are_seen_by_the_event_consumer(tenant, api):
    seg = segment(tenant, "pro-users", PRO)
    everyone = segment(tenant, "all-recipients", {})
    response = api.post("/api/v1/events", {"name": "upgraded", "recipient": {
        "external_id": "ada", "attributes": {"plan": "pro"}}}, format="json")
    assert response.status_code == 202
    assert members(seg) == set()  # not in the request: in the events' consumer, after commit
    events_process()
    ada = recipients.Recipient.objects.get(tenant=tenant, external_id="ada")
    assert members(seg) == members(everyone) == {ada.pk}


def test_a_merge_moves_history_memberships_to_the_target(tenant):
    anonymous, known = RecipientFactory(tenant=tenant), RecipientFactory(tenant=tenant)
    seg = segment(tenant, "checkout-no-order", CHECKOUT_NO_ORDER)
    send_event(tenant, anonymous, "checkout.started")
    assert members(seg) == {anonymous.pk}
    recipients.recipient_merge(source=anonymous, target=known)
    assert members(seg) == {known.pk}


def test_the_tick_leaves_segments_that_do_not_drift(tenant, clock_travel):
    segment(tenant, "pro-users", PRO)
    clock_travel(seconds=86400)
    assert services.segments_recompute_due() == 0


def test_invalid_conditions_are_refused_naming_the_field(tenant):
    from apps.core.errors import InvalidInput

    with pytest.raises(InvalidInput) as error:
        services.segment_save(segment=Segment(tenant=tenant, key="x", name="x", conditions={
            "all": [PRO, {"field": "event.properties.x", "op": "exists"}]}))
    assert "conditions.all[1].field" in error.value.fields


@pytest.fixture
def journey_tenant(tenant):
    templates(tenant, "welcome")
    ProviderConfig.objects.create(tenant=tenant, name="log", channel="email", kind="log")
    return tenant


ONBOARD_PRO = {"trigger": {"segment": "pro-users", "exit_on_leave": True}, "reentry": {"rule": "every_time"},
               "steps": [{"id": "hello", "type": "send", "template": "welcome", "channels": ["email"],
                          "next": "later"},
                         {"id": "later", "type": "delay", "duration": "3d"}]}


def test_joining_a_segment_starts_a_journey_and_leaving_exits_it(journey_tenant):
    tenant = journey_tenant
    ada = RecipientFactory(tenant=tenant, attributes={"plan": "free"})
    segment(tenant, "pro-users", PRO)
    journey = active_journey(tenant, ONBOARD_PRO, key="onboard-pro")
    assert JourneyVersion.objects.get(journey=journey).trigger_event == "segment:pro-users"

    set_plan(ada, "pro")
    run = JourneyRun.objects.get(journey=journey, recipient=ada)
    assert run.status == "active" and run.context["trigger"]["properties"] == {"segment": "pro-users"}
    assert Message.objects.filter(journey_run=run).count() == 1

    set_plan(ada, "free")
    run.refresh_from_db()
    assert (run.status, run.end_reason) == ("exited", "Left segment pro-users")


def test_a_recompute_enters_joiners_only_into_journeys_on_that_segment(journey_tenant):
    tenant = journey_tenant
    pros = [RecipientFactory(tenant=tenant, attributes={"plan": "pro"}) for _ in range(3)]
    others = [RecipientFactory(tenant=tenant, attributes={"plan": "free"}) for _ in range(2)]
    seg = segment(tenant, "pro-users", PRO, compute=False)
    journey = active_journey(tenant, ONBOARD_PRO, key="onboard-pro")
    segment(tenant, "all-recipients", {})  # no journey uses it: 5 members, no run
    assert JourneyRun.objects.count() == 0
    services.segment_recompute(seg)  # the journey's segment: its first members enter
    assert set(JourneyRun.objects.values_list("recipient_id", flat=True)) == {r.pk for r in pros}
    # Rows changed without the profile hook (a bulk update): the recompute's joiners enter too.
    type(others[0]).objects.filter(pk=others[0].pk).update(attributes={"plan": "pro"})
    services.segment_recompute(seg, chunk_size=2)
    assert JourneyRun.objects.filter(journey=journey).count() == 4
    assert JourneyRun.objects.get(recipient=others[0]).status == "active"


def test_journey_trigger_segment_is_validated(tenant):
    errors = journeys.journey_definition_errors(journey=journeys.Journey(tenant=tenant, definition={
        **ONBOARD_PRO, "trigger": {"segment": "nope", "exit_on_leave": "yes"}}))
    assert errors["trigger.segment"] == ["There is no segment 'nope'."]
    assert "trigger.exit_on_leave" in errors
    errors = journeys.journey_definition_errors(journey=journeys.Journey(tenant=tenant, definition={
        **ONBOARD_PRO, "trigger": {"segment": "pro-users", "event": "signup"}}))
    assert "trigger.segment" in errors
