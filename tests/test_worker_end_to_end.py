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
