"""A real Celery worker on the test database and broker, sharing cache and clock with the tests."""

from datetime import datetime, timedelta

import pytest
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from apps.core.queue import enqueue_on_commit
from apps.core.services import LAST_TICK_KEY
from apps.core.tasks import tick
from apps.tenants import services
from apps.tenants.models import ApiKey
from apps.tenants.tests.factories import TenantFactory
from tests.fixtures.processes import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_worker_runs_the_tick_on_committed_rows_with_the_moved_clock(celery_worker, clock_travel):
    api_key, token = services.api_key_create(tenant=TenantFactory(), name="backend")
    services.api_key_authenticate(token=token)  # notes the use in the shared cache
    cache.delete(LAST_TICK_KEY)
    clock_travel(seconds=3 * 86400)

    with transaction.atomic():
        enqueue_on_commit(tick)

    last_tick = wait_for(lambda: cache.get(LAST_TICK_KEY), message="the worker's tick",
                         timeout=30)
    # The worker read the moved clock (shared through the cache), not its own.
    assert datetime.fromisoformat(last_tick) - timezone.now() > timedelta(days=2)
    # And it wrote to the test database: the tick job recorded the key's use.
    assert wait_for(lambda: ApiKey.objects.get(pk=api_key.pk).last_used_at, timeout=10)


def test_an_accepted_event_is_processed_by_the_worker(celery_worker):
    from rest_framework.test import APIClient

    from apps.events.models import Event
    from apps.events.tests.factories import api_key_for

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(TenantFactory())}")
    response = client.post("/api/v1/events", {"name": "signed_up", "recipient": "u1"}, format="json")
    assert response.status_code == 202
    event_id = response.json()["id"]
    assert wait_for(lambda: Event.objects.get(pk=event_id).processed_at, timeout=30,
                    message="the worker to process the event")


def test_an_event_whose_task_was_lost_is_picked_up_by_the_sweeper(celery_worker, clock_travel):
    from apps.core.services import tick as run_tick
    from apps.events.tests.factories import EventFactory

    lost = EventFactory(received_at=timezone.now())  # stored, but its task never published
    clock_travel(seconds=120)
    with transaction.atomic():
        run_tick()
    lost.refresh_from_db()
    assert wait_for(lambda: type(lost).objects.get(pk=lost.pk).processed_at, timeout=30,
                    message="the re-enqueued event to be processed")


def test_an_api_send_is_delivered_by_the_worker_through_the_log_provider(celery_worker):
    from rest_framework.test import APIClient

    from apps.delivery.models import ProviderConfig
    from apps.events.tests.factories import api_key_for
    from apps.messaging.models import Message

    tenant = TenantFactory()
    ProviderConfig.objects.create(tenant=tenant, name="log", channel="email", kind="log")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(tenant)}")
    response = client.post("/api/v1/messages", {
        "recipient": {"external_id": "u1", "email": "ada@example.com"}, "channel": "email",
        "content": {"email": {"subject": "Hi", "text": "Hello"}}}, format="json")
    assert response.status_code == 202
    message_id = response.json()["messages"][0]["id"]
    assert wait_for(lambda: Message.objects.get(pk=message_id).status == "sent", timeout=30,
                    message="the worker to send the message")
