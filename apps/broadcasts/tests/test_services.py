"""Broadcasts on the database: checking, the fan-out, local time, pause / resume / cancel, policy,
progress. Tasks are not run here (nothing commits); the tests call what the tasks call."""

from datetime import UTC, datetime, time, timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.broadcasts import services
from apps.broadcasts.models import Broadcast
from apps.broadcasts.selectors import broadcast_progress
from apps.broadcasts.tests.factories import many_recipients, published_template, segment_with
from apps.core import clock
from apps.core.errors import Conflict, InvalidInput
from apps.core.services import tick
from apps.delivery.models import ProviderConfig
from apps.messaging import pipeline
from apps.messaging.models import Message, StatusEvent
from apps.messaging.services import messages_release_due
from apps.policy.models import Kind, Preference
from apps.policy.tests.factories import CategoryFactory, PolicySettingsFactory
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant():
    tenant = TenantFactory(default_timezone="UTC")
    ProviderConfig.objects.create(tenant=tenant, name="email-log", channel="email", kind="log")
    published_template(tenant)
    return tenant


@pytest.fixture
def people(tenant):
    return many_recipients(tenant, 7)


@pytest.fixture
def small_pages(settings):
    settings.SIGNALBOX_BROADCAST_PAGE = 3


def create(tenant, **fields):
    return services.broadcast_create(tenant=tenant, name="November news", template_key="news", **fields)


def started(tenant, **fields):
    return services.broadcast_start(broadcast=create(tenant, **fields))


def send_all(broadcast):
    ids = list(Message.objects.filter(broadcast=broadcast, status="queued").values_list("id", flat=True))
    pipeline.messages_send(message_ids=ids)


def statuses(broadcast):
    return sorted(Message.objects.filter(broadcast=broadcast).values_list("status", flat=True))


def test_a_broadcast_needs_a_published_template_and_one_known_audience(tenant, people):
    segment_with(tenant, people)
    with pytest.raises(InvalidInput) as error:
        services.broadcast_create(tenant=tenant, name="x", template_key="nope", segment_key="missing")
    assert set(error.value.fields) == {"template", "segment"}
    with pytest.raises(InvalidInput) as error:
        create(tenant)
    assert "segment" in error.value.fields
    with pytest.raises(InvalidInput) as error:
        create(tenant, segment_key="everyone", external_ids=["u1"])
    assert error.value.fields["segment"] == [
        "Give `segment` (a segment key) or `recipients` (external ids), not both."]
    with pytest.raises(InvalidInput) as error:
        create(tenant, external_ids=["u1", "ghost", "u2", "nobody"])
    assert error.value.fields["recipients.1"] == ["No recipient has the external id 'ghost'."]
    assert error.value.fields["recipients.3"] == ["No recipient has the external id 'nobody'."]
    with pytest.raises(InvalidInput) as error:
        create(tenant, segment_key="everyone", channels=["push"])
    assert error.value.fields["channels"] == ["The template has no content for push."]
    # An unpublished template is refused like an unknown one.
    from apps.content.tests.factories import TemplateFactory
    TemplateFactory(tenant=tenant, key="draft-only")
    with pytest.raises(InvalidInput) as error:
        services.broadcast_create(tenant=tenant, name="x", template_key="draft-only", segment_key="everyone")
    assert set(error.value.fields) == {"template"}
    # Another tenant's segment is unknown here.
    other = TenantFactory()
    segment_with(other, [], key="theirs")
    with pytest.raises(InvalidInput) as error:
        create(tenant, segment_key="theirs")
    assert set(error.value.fields) == {"segment"}


def test_defaults_come_from_the_template_and_its_category(tenant, people):
    CategoryFactory(tenant=tenant, key="general", kind=Kind.PRODUCT, default_priority="low")
    broadcast = create(tenant, external_ids=["u1", "u2"])
    assert broadcast.channels == ["email", "sms"]
    assert (broadcast.category, broadcast.priority, broadcast.status) == ("general", "low", "draft")


def test_the_fan_out_pages_the_segment_and_a_redone_page_creates_nothing_twice(tenant, people, small_pages):
    segment_with(tenant, people)
    broadcast = started(tenant, segment_key="everyone")
    assert (broadcast.status, broadcast.targeted) == ("sending", 7)
    assert services.broadcast_fan_out_page(broadcast_id=broadcast.pk) is True
    broadcast.refresh_from_db()
    assert (broadcast.cursor, broadcast.created_count) == (people[2].pk, 3)
    # A worker that died after committing a page but before the next: the cursor is where it
    # was; and even a page done twice (cursor moved back) finds its messages already there.
    Broadcast.objects.filter(pk=broadcast.pk).update(cursor=0, created_count=0)
    services.broadcast_fan_out(broadcast_id=broadcast.pk)
    broadcast.refresh_from_db()
    assert broadcast.fanned_out_at is not None and broadcast.targeted == 7
    messages = Message.objects.filter(broadcast=broadcast)
    assert sorted(messages.values_list("recipient_id", flat=True)) == [r.pk for r in people]
    assert {m.dedupe_key for m in messages} == {f"bc:{broadcast.pk}:{r.pk}" for r in people}
    assert {(m.source, m.template_key, m.status) for m in messages} == {("broadcast", "news", "queued")}
    assert not services.broadcast_fan_out_page(broadcast_id=broadcast.pk)  # done: nothing more


def test_messages_go_through_the_pipeline_and_the_tick_completes_the_broadcast(tenant, people):
    broadcast = started(tenant, external_ids=[r.external_id for r in people[:4]])
    services.broadcast_fan_out(broadcast_id=broadcast.pk)
    tick()
    broadcast.refresh_from_db()
    assert broadcast.status == "sending"  # messages still queued
    send_all(broadcast)
    assert statuses(broadcast) == ["sent"] * 4
    sent = Message.objects.filter(broadcast=broadcast).first()
    assert sent.rendered["subject"] == f"News for {sent.recipient.external_id}"
    tick()
    broadcast.refresh_from_db()
    assert broadcast.status == "completed" and broadcast.finished_at is not None
    cache.clear()
    assert broadcast_progress(broadcast=broadcast) == {
        "status": "completed", "targeted": 4, "created": 4, "queued": 0, "sent": 4, "suppressed": 0,
        "failed": 0, "cancelled": 0, "percent": 100}


def test_progress_is_counted_once_per_few_seconds(tenant, people):
    broadcast = started(tenant, external_ids=[r.external_id for r in people])
    services.broadcast_fan_out(broadcast_id=broadcast.pk)
    broadcast.refresh_from_db()
    cache.clear()
    with CaptureQueriesContext(connection) as queries:
        first = broadcast_progress(broadcast=broadcast)
        for _ in range(5):
            assert broadcast_progress(broadcast=broadcast) == first
    # (Without Redis the cache is a table: its reads are queries too, but not counts.)
    assert len([q for q in queries if "GROUP BY" in q["sql"]]) == 1
    assert (first["queued"], first["sent"], first["percent"]) == (7, 0, 0)
    send_all(broadcast)
    assert broadcast_progress(broadcast=broadcast)["sent"] == 0  # still the cached counts
    cache.clear()  # as when the few seconds are over
    assert broadcast_progress(broadcast=broadcast)["sent"] == 7


def test_a_scheduled_broadcast_starts_when_the_tick_finds_it_due(tenant, people, clock_travel):
    broadcast = started(tenant, external_ids=["u1"], send_at=clock.now() + timedelta(hours=1))
    assert broadcast.status == "scheduled"
    tick()
    broadcast.refresh_from_db()
    assert broadcast.status == "scheduled"
    clock_travel(seconds=3601)
    tick()
    broadcast.refresh_from_db()
    assert (broadcast.status, broadcast.targeted) == ("sending", 1)


def test_local_time_sends_at_the_wall_clock_time_in_each_zone(tenant, clock_travel):
    clock_travel(seconds=(datetime(2030, 3, 10, 12, 0, tzinfo=UTC) - clock.now()).total_seconds())
    tokyo = RecipientFactory(tenant=tenant, external_id="tokyo", timezone="Asia/Tokyo")
    berlin = RecipientFactory(tenant=tenant, external_id="berlin", timezone="Europe/Berlin")
    ny = RecipientFactory(tenant=tenant, external_id="ny", timezone="America/New_York")
    nowhere = RecipientFactory(tenant=tenant, external_id="nowhere", timezone="")  # tenant's: UTC
    # 09:00 on 11 March, wherever each recipient is (starts 14 hours ahead of 09:00 UTC).
    broadcast = started(tenant, external_ids=["tokyo", "berlin", "ny", "nowhere"],
                        send_at=datetime(2030, 3, 11, 9, 0, tzinfo=UTC), local_time=True)
    assert broadcast.status == "scheduled"
    clock_travel(seconds=8 * 3600)  # 20:00 UTC on the 10th: 05:00 on the 11th in Tokyo
    tick()
    services.broadcast_fan_out(broadcast_id=broadcast.pk)
    send_at = {m.recipient_id: m.send_at for m in Message.objects.filter(broadcast=broadcast)}
    assert send_at == {
        tokyo.pk: datetime(2030, 3, 11, 0, 0, tzinfo=UTC),
        berlin.pk: datetime(2030, 3, 11, 8, 0, tzinfo=UTC),
        ny.pk: datetime(2030, 3, 11, 13, 0, tzinfo=UTC),  # EDT from 10 March
        nowhere.pk: datetime(2030, 3, 11, 9, 0, tzinfo=UTC),
    }
    assert set(statuses(broadcast)) == {"scheduled"}
    clock_travel(seconds=4 * 3600 + 1)  # just past midnight UTC: 09:00 in Tokyo
    assert messages_release_due() == 1
    assert Message.objects.get(recipient=tokyo).status == "queued"


def test_a_local_moment_already_past_is_sent_now(tenant, clock_travel):
    clock_travel(seconds=(datetime(2030, 3, 11, 10, 0, tzinfo=UTC) - clock.now()).total_seconds())
    RecipientFactory(tenant=tenant, external_id="tokyo", timezone="Asia/Tokyo")  # 19:00 there
    RecipientFactory(tenant=tenant, external_id="la", timezone="America/Los_Angeles")  # 03:00 there
    broadcast = started(tenant, external_ids=["tokyo", "la"],
                        send_at=datetime(2030, 3, 11, 9, 0, tzinfo=UTC), local_time=True)
    services.broadcast_fan_out(broadcast_id=broadcast.pk)
    status = dict(Message.objects.filter(broadcast=broadcast).values_list("recipient__external_id", "status"))
    assert status == {"tokyo": "queued", "la": "scheduled"}


def test_pause_holds_unsent_messages_and_stops_the_fan_out_resume_goes_on(tenant, people, small_pages):
    broadcast = started(tenant, external_ids=[r.external_id for r in people])
    services.broadcast_fan_out_page(broadcast_id=broadcast.pk)
    services.broadcast_pause(broadcast=broadcast)
    assert statuses(broadcast) == ["scheduled"] * 3
    # Nothing takes a held message: not its task, not the sweepers, not the fan-out.
    send_all(broadcast)
    every = list(Message.objects.filter(broadcast=broadcast).values_list("id", flat=True))
    pipeline.messages_send(message_ids=every)
    assert messages_release_due() == 0
    services.broadcast_fan_out(broadcast_id=broadcast.pk)
    assert statuses(broadcast) == ["scheduled"] * 3
    held = Message.objects.filter(broadcast=broadcast).first()
    assert held.timeline.last().reason_code == "broadcast_paused"
    with pytest.raises(Conflict):
        services.broadcast_pause(broadcast=broadcast)

    services.broadcast_resume(broadcast=broadcast)
    assert statuses(broadcast) == ["queued"] * 3
    services.broadcast_fan_out(broadcast_id=broadcast.pk)
    send_all(broadcast)
    assert statuses(broadcast) == ["sent"] * 7


def test_resume_keeps_a_local_time_message_for_its_moment(tenant, clock_travel):
    clock_travel(seconds=(datetime(2030, 3, 11, 0, 0, tzinfo=UTC) - clock.now()).total_seconds())
    RecipientFactory(tenant=tenant, external_id="berlin", timezone="Europe/Berlin")
    broadcast = started(tenant, external_ids=["berlin"], send_at=datetime(2030, 3, 11, 9, 0, tzinfo=UTC),
                        local_time=True)
    services.broadcast_fan_out(broadcast_id=broadcast.pk)
    services.broadcast_pause(broadcast=broadcast)
    services.broadcast_resume(broadcast=broadcast)
    message = Message.objects.get(broadcast=broadcast)
    assert (message.status, message.next_attempt_at) == ("scheduled", datetime(2030, 3, 11, 8, 0, tzinfo=UTC))


def test_cancel_cancels_what_is_not_sent_and_stops_the_fan_out(tenant, people, small_pages):
    broadcast = started(tenant, external_ids=[r.external_id for r in people])
    services.broadcast_fan_out_page(broadcast_id=broadcast.pk)
    first = list(Message.objects.filter(broadcast=broadcast).order_by("id").values_list("id", flat=True))
    pipeline.messages_send(message_ids=first[:1])  # one already sent
    services.broadcast_cancel(broadcast=broadcast)
    services.broadcast_fan_out(broadcast_id=broadcast.pk)
    assert statuses(broadcast) == ["cancelled", "cancelled", "sent"]
    entry = StatusEvent.objects.filter(message_id=first[1]).last()
    assert (entry.status, entry.reason) == ("cancelled", "broadcast cancelled")
    send_all(broadcast)
    assert statuses(broadcast) == ["cancelled", "cancelled", "sent"]
    with pytest.raises(Conflict):
        services.broadcast_cancel(broadcast=broadcast)
    cache.clear()
    broadcast.refresh_from_db()
    progress = broadcast_progress(broadcast=broadcast)
    assert (progress["status"], progress["sent"], progress["cancelled"], progress["percent"]) == (
        "cancelled", 1, 2, 100)


def test_policy_applies_quiet_hours_defer_and_a_preference_drops(tenant, clock_travel):
    CategoryFactory(tenant=tenant, key="marketing", kind=Kind.COMMERCIAL)
    PolicySettingsFactory(tenant=tenant, quiet_start=time(21), quiet_end=time(8))
    clock_travel(seconds=(datetime(2030, 1, 15, 22, 0, tzinfo=UTC) - clock.now()).total_seconds())
    night = RecipientFactory(tenant=tenant, external_id="night", timezone="Europe/Berlin")  # 23:00
    gone = RecipientFactory(tenant=tenant, external_id="gone", timezone="Asia/Kolkata")  # 03:30
    Preference.objects.create(tenant=tenant, recipient=gone, commercial_unsubscribed_at=clock.now())
    broadcast = started(tenant, external_ids=["night", "gone"], category="marketing", channels=["email"])
    services.broadcast_fan_out(broadcast_id=broadcast.pk)
    send_all(broadcast)
    by_recipient = {m.recipient_id: m for m in Message.objects.filter(broadcast=broadcast)}
    assert by_recipient[night.pk].status == "scheduled"
    assert by_recipient[night.pk].timeline.last().reason_code == "quiet_hours"
    assert by_recipient[gone.pk].status == "suppressed"
    assert "unsubscribed from commercial" in by_recipient[gone.pk].timeline.last().reason


def test_a_long_fan_out_hands_over_to_a_fresh_task(tenant, people, small_pages, monkeypatch):
    from apps.broadcasts import tasks

    broadcast = started(tenant, external_ids=[r.external_id for r in people])
    handed_over = []
    monkeypatch.setattr(services, "enqueue_on_commit", lambda task, *args: handed_over.append((task, args)))
    services.broadcast_fan_out(broadcast_id=broadcast.pk, budget_seconds=0)
    broadcast.refresh_from_db()
    assert (broadcast.created_count, broadcast.fanned_out_at) == (3, None)  # one page, then handed over
    assert handed_over == [(tasks.fan_out, (broadcast.pk,))]


def test_the_fan_out_waits_for_a_segment_being_recomputed(tenant, people):
    from apps.segments.models import Segment

    segment = segment_with(tenant, people[:2])
    Segment.objects.filter(pk=segment.pk).update(status=Segment.Status.COMPUTING)
    broadcast = started(tenant, segment_key="everyone")
    services.broadcast_fan_out(broadcast_id=broadcast.pk)
    assert not Message.objects.filter(broadcast=broadcast).exists()  # not a half-computed audience
    Segment.objects.filter(pk=segment.pk).update(status=Segment.Status.READY)
    services.broadcast_fan_out(broadcast_id=broadcast.pk)  # as the tick's stall check re-enqueues it
    assert Message.objects.filter(broadcast=broadcast).count() == 2
