"""Committed events reach their consumers once, and lost processing tasks are re-enqueued."""

import pytest

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
    assert consumer == [ids]
    assert not Event.objects.filter(processed_at__isnull=True).exists()


def test_a_failing_consumer_leaves_the_events_for_a_retry(settings):
    settings.SIGNALBOX_EVENT_CONSUMERS = [f"{__name__}.broken_consumer"]
    event = EventFactory()
    with pytest.raises(RuntimeError):
        services.events_process(event_ids=[event.pk])
    event.refresh_from_db()
    assert event.processed_at is None


def broken_consumer(*, events):
    raise RuntimeError("engine down")


def test_unprocessed_events_are_requeued_after_a_while(clock_travel, django_capture_on_commit_callbacks):
    from apps.core import clock

    fresh = EventFactory(received_at=clock.now())
    EventFactory(received_at=clock.now(), processed_at=clock.now())
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.events_requeue_unprocessed() == 0  # too recent: its task may still run
    clock_travel(seconds=120)
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.events_requeue_unprocessed() == 1
    assert len(callbacks) == 1
    assert callbacks[0].args[1] == ([fresh.pk],)
