"""Faults that must not lose or duplicate messages."""

import collections
import time

import pytest
from django.db import connection, transaction

from apps.core.services import tick
from apps.delivery.models import ProviderConfig
from apps.messaging.models import Message
from apps.messaging.services import message_create
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.tests.factories import TenantFactory
from tests.fixtures.processes import WorkerProcess, wait_for
from tests.fixtures.servers import Reply

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MESSAGES = 20


def test_sigkill_mid_batch_loses_nothing_and_resends_only_in_flight_calls(
    tmp_path, http_server, settings
):
    # Real time, not a moved clock: other workers of the test session may be sending too, and
    # only the dead worker's messages may look stuck. A live send here takes 0.2 s.
    settings.SIGNALBOX_MESSAGE_STUCK_SECONDS = 2
    tenant = TenantFactory()
    ProviderConfig.objects.create(tenant=tenant, name="hook", channel="webhook", kind="webhook",
                                  settings={"url": http_server.url, "timeout": 5})
    http_server.default = Reply(delay=0.2)  # slow enough to be killed in the middle
    worker = WorkerProcess(tmp_path / "first.log", connection.settings_dict["NAME"])
    worker.start()
    with transaction.atomic():
        ids = [message_create(message=Message(
            tenant=tenant, recipient=RecipientFactory(tenant=tenant), channels=["webhook"],
            content={"webhook": {"body": {"n": n}}}, dedupe_key=f"kill:{n}")).pk
            for n in range(MESSAGES)]
    wait_for(lambda: len(http_server.requests) >= 4, timeout=30, message="the first sends")
    worker.kill()
    # Later, the tick finds what the dead worker held (stuck `sending`, and `queued` whose task
    # it had taken) and re-enqueues it; then a new worker runs.
    time.sleep(settings.SIGNALBOX_MESSAGE_STUCK_SECONDS + 0.5)
    with transaction.atomic():
        tick()
    replacement = WorkerProcess(tmp_path / "second.log", connection.settings_dict["NAME"])
    replacement.start()
    try:
        wait_for(lambda: Message.objects.filter(pk__in=ids, status="sent").count() == MESSAGES,
                 timeout=60, message="every message to be sent")
    finally:
        replacement.stop()

    calls = collections.Counter(r.headers["webhook-id"] for r in http_server.requests)
    assert set(calls) == {f"msg-{pk}" for pk in ids}  # every message reached the provider
    resent = [key for key, n in calls.items() if n > 1]
    assert all(calls[key] == 2 for key in resent)
    # Only a call in flight at the kill is made twice (the worker runs 4 threads), and then with
    # the same idempotency key (the webhook-id above is the key).
    assert len(resent) <= 4, calls
