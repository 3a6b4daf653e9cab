"""Committed events reach their consumers once, and lost processing tasks are re-enqueued."""

import threading
import time

import pytest
from django.db import OperationalError

from apps.events import services
from apps.events.models import Event
from apps.events.tests.factories import EventFactory

pytestmark = pytest.mark.django_db

seen: list[list[int]] = []


def recording_consumer(*, events):
    """A test double standing in for the journey engine."""
    seen.append([e.pk for e in events])


@pytest.fixture
def consumer(settings):
    seen.clear()
    settings.SIGNALBOX_EVENT_CONSUMERS = [f"{__name__}.recording_consumer"]
    return seen


def test_consumers_get_each_committed_event_once(consumer):
    events = EventFactory.create_batch(3)
    ids = [e.pk for e in events]
    assert services.events_process(event_ids=ids) == 3
    assert services.events_process(event_ids=ids) == 0  # a redelivered task does nothing
    assert [sorted(batch) for batch in consumer] == [sorted(ids)]
    assert not Event.objects.filter(processed_at__isnull=True).exists()


def test_a_database_failure_leaves_the_events_for_a_retry(settings):
    settings.SIGNALBOX_EVENT_CONSUMERS = [f"{__name__}.broken_consumer"]
    event = EventFactory()
    with pytest.raises(OperationalError):
        services.events_process(event_ids=[event.pk])
    event.refresh_from_db()
    assert event.processed_at is None


def broken_consumer(*, events):
    raise OperationalError("server closed the connection unexpectedly")


def picky_consumer(*, events):
    """Records the events, and fails on any event named `poison` (a bug, not an outage)."""
    if any(e.name == "poison" for e in events):
        Event.objects.filter(pk__in=[e.pk for e in events]).update(name="half-written")
        raise ValueError("cannot handle poison")
    seen.append([e.pk for e in events])


def test_an_event_a_consumer_fails_on_is_skipped_with_the_error_and_blocks_nothing(settings):
    seen.clear()
    settings.SIGNALBOX_EVENT_CONSUMERS = [f"{__name__}.picky_consumer"]
    good, poison, later = EventFactory(), EventFactory(name="poison"), EventFactory()
    assert services.events_process(event_ids=[good.pk, poison.pk, later.pk]) == 3
    assert sorted(sum(seen, [])) == sorted([good.pk, later.pk])
    poison.refresh_from_db()
    assert poison.processed_at is not None and poison.process_error == "ValueError: cannot handle poison"
    assert poison.name == "poison"  # the failed attempt's writes were rolled back
    assert not Event.objects.filter(name="half-written").exists()


def test_a_drain_processes_everything_waiting_oldest_first(consumer):
    events = EventFactory.create_batch(5)
    assert services.events_drain() == 5
    assert sorted(sum(consumer, [])) == sorted(e.pk for e in events)
    assert services.events_drain() == 0


def test_one_drain_is_scheduled_for_many_commits_and_none_is_missed(
    consumer, django_capture_on_commit_callbacks
):
    from django.core.cache import cache

    cache.delete(services.DRAIN_FLAG)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        for _ in range(3):
            services.events_drain_wake_up()
    assert len(callbacks) == 1  # the flag was set by the first: one drain task for all three
    EventFactory()  # committed while the drain is scheduled…
    assert services.events_drain() == 1  # …is seen by it, and the drain clears the flag
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.events_drain_wake_up()
    assert len(callbacks) == 1  # so the next commit schedules a new drain


def test_events_left_waiting_force_a_drain(clock_travel, django_capture_on_commit_callbacks):
    from django.core.cache import cache

    from apps.core import clock

    cache.set(services.DRAIN_FLAG, 1)  # a drain task was lost with the flag still set
    EventFactory(received_at=clock.now())
    EventFactory(received_at=clock.now(), processed_at=clock.now())
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.events_requeue_unprocessed() == 0  # too recent: its drain may still run
    assert callbacks == []
    clock_travel(seconds=120)
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.events_requeue_unprocessed() == 1
    assert len(callbacks) == 1


def test_an_event_whose_recipient_row_is_gone_is_skipped_by_the_real_consumers(settings):
    """events_event has no foreign-key constraints (models.Event): an event committed while its
    recipient was deleted points at nothing; the project's consumers must not stall on it."""
    from django.conf import settings as project

    from apps.journeys.models import JourneyRun
    from apps.journeys.tests.factories import ABANDONED_CART, active_journey, templates
    from apps.recipients.models import Recipient
    from apps.recipients.tests.factories import RecipientFactory
    from apps.tenants.tests.factories import TenantFactory

    settings.SIGNALBOX_EVENT_CONSUMERS = project.SIGNALBOX_EVENT_CONSUMERS  # the real ones
    tenant = TenantFactory()
    orphan, fine = [EventFactory(name="cart.abandoned", tenant=tenant,
                                 recipient=RecipientFactory(tenant=tenant)) for _ in range(2)]
    templates(tenant, "cart-reminder", "cart-mail")
    active_journey(tenant, ABANDONED_CART)
    Recipient.objects.filter(pk=orphan.recipient_id)._raw_delete(Recipient.objects.db)  # no cascade
    assert services.events_process(event_ids=[orphan.pk, fine.pk]) == 2
    assert not Event.objects.filter(processed_at__isnull=True).exists()
    assert list(JourneyRun.objects.values_list("recipient_id", flat=True)) == [fine.recipient_id]


def wait_for(condition, seconds=2.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    return condition()


def test_commits_close_together_share_a_wake_up_and_none_is_left_without_one(settings, monkeypatch):
    settings.SIGNALBOX_EVENT_WAKE_UP_SECONDS = 0.2
    flag, set_nx, published = set(), [], []

    def drain_wanted():  # the cache's SET NX of the drain flag
        set_nx.append(threading.get_ident())
        wanted = not flag
        flag.add(1)
        return wanted

    monkeypatch.setattr(services, "_drain_wanted", drain_wanted)
    monkeypatch.setattr(services, "enqueue_on_commit", lambda task: published.append(task.name))
    monkeypatch.setattr(services, "enqueue_now", lambda task: published.append(task.name))
    wake_up = services._DrainWakeUp()
    for _ in range(50):  # 50 requests' commits within a few ms
        wake_up()
    # The first, after a quiet spell, in the request itself: a lone event never waits on a thread.
    assert set_nx == [threading.get_ident()] and published == ["events.drain"]
    # The other 49 share one more SET NX, by the thread, 0.2 s later (the flag is set: no task).
    assert wait_for(lambda: len(set_nx) == 2) and set_nx[1] != threading.get_ident()
    time.sleep(0.3)
    assert len(set_nx) == 2 and published == ["events.drain"]
    flag.clear()  # the drain ran and cleared the flag…
    wake_up()  # …so the next commit, alone again, gets its own drain
    assert published == ["events.drain"] * 2


def test_without_a_delay_every_wake_up_is_the_callers(settings, monkeypatch):
    settings.SIGNALBOX_EVENT_WAKE_UP_SECONDS = 0
    calls = []
    monkeypatch.setattr(services, "events_drain_wake_up", lambda: calls.append(threading.get_ident()))
    wake_up = services._DrainWakeUp()
    wake_up()
    wake_up()
    assert calls == [threading.get_ident()] * 2
