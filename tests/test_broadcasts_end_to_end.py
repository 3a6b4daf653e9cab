"""Broadcasts through a real Celery worker: 10,000 recipients with the worker killed mid-way,
cancel mid-way, and local-time sending spread by zone."""

import collections
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction

from apps.broadcasts import services
from apps.broadcasts.models import Broadcast
from apps.broadcasts.tests.factories import many_recipients, segment_with
from apps.content.tests.factories import TemplateFactory, published
from apps.core import clock
from apps.core.services import tick
from apps.delivery.models import ProviderConfig
from apps.messaging.models import Message
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.tests.factories import TenantFactory
from tests.fixtures.processes import WorkerProcess, wait_for
from tests.fixtures.servers import Reply

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


# A few concurrent calls per batch, not 50 (the test HTTP server is a thread per request).
WORKER_ENV = {"SIGNALBOX_SEND_THREADS": "4"}


def webhook_tenant(http_server):
    # The test server listens with a backlog of 5; a worker of the session sending 50 calls at
    # once would see refused connections (retries, open breakers) and keep retrying into the
    # next tests. Linux lets a listening socket take a new backlog.
    http_server.httpd.socket.listen(512)
    tenant = TenantFactory(default_timezone="UTC")
    ProviderConfig.objects.create(tenant=tenant, name="hook", channel="webhook", kind="webhook",
                                  settings={"url": http_server.url, "timeout": 5})
    published(TemplateFactory(tenant=tenant, key="news", email_subject="", email_body="", sms_text="",
                              webhook_body='{"to": "{{ recipient.external_id }}"}'))
    return tenant


def start(tenant, **fields):
    with transaction.atomic():
        broadcast = services.broadcast_create(tenant=tenant, name="News", template_key="news", **fields)
        return services.broadcast_start(broadcast=broadcast)


def ids(broadcast, **filters) -> set[int]:
    return set(Message.objects.filter(broadcast=broadcast, **filters).values_list("id", flat=True))


def count(broadcast, **filters) -> int:
    return Message.objects.filter(broadcast=broadcast, **filters).count()


def test_ten_thousand_recipients_get_one_message_each_though_the_worker_is_killed(
        tmp_path, http_server, settings):
    recipients = 10_000
    # Real time, not a moved clock: another worker of the test session may be sending too, and
    # only the dead worker's messages may look stuck.
    settings.SIGNALBOX_MESSAGE_STUCK_SECONDS = 4
    settings.SIGNALBOX_BROADCAST_STALL_SECONDS = 1
    tenant = webhook_tenant(http_server)
    segment_with(tenant, many_recipients(tenant, recipients))
    # Small fan-out pages, so that the kill lands in the middle of the fan-out.
    worker_env = {**WORKER_ENV, "SIGNALBOX_BROADCAST_PAGE": "250"}
    worker = WorkerProcess(tmp_path / "first.log", connection.settings_dict["NAME"], worker_env)
    worker.start()
    broadcast = start(tenant, segment_key="everyone")
    # Killed a few pages into the fan-out (40 pages), with sends already going on (on PostgreSQL).
    wait_for(lambda: Broadcast.objects.get(pk=broadcast.pk).created_count >= 1000, timeout=120,
             interval=0.02, message="the first pages")
    worker.kill()
    in_flight = {f"msg-{pk}" for pk in Message.objects.filter(broadcast=broadcast, status="sending")
                 .values_list("id", flat=True)}
    broadcast.refresh_from_db()
    assert broadcast.fanned_out_at is None, "the fan-out ended before the kill: nothing was tested"
    assert 0 < broadcast.created_count < recipients
    # Later, with no worker running, the tick finds what the dead worker left: the fan-out has
    # not moved (re-enqueued), messages stuck `sending` or `queued` (re-enqueued, 1,000 a tick).
    time.sleep(settings.SIGNALBOX_MESSAGE_STUCK_SECONDS + 0.5)
    # (Another worker of the test session, if one runs, may have gone on with it meanwhile.)
    while tick()["apps.messaging.services.messages_rescue_stuck"]:
        pass
    replacement = WorkerProcess(tmp_path / "second.log", connection.settings_dict["NAME"], worker_env)
    replacement.start()
    try:
        wait_for(lambda: count(broadcast, status="sent") == recipients, timeout=600, interval=1,
                 message="every message to be sent")
    finally:
        replacement.stop()

    broadcast.refresh_from_db()
    assert broadcast.fanned_out_at is not None and broadcast.targeted == recipients
    per_recipient = collections.Counter(Message.objects.filter(broadcast=broadcast)
                                        .values_list("recipient_id", flat=True))
    assert len(per_recipient) == recipients and set(per_recipient.values()) == {1}
    calls = collections.Counter(r.headers["webhook-id"] for r in http_server.requests)
    ids = set(Message.objects.filter(broadcast=broadcast).values_list("id", flat=True))
    assert set(calls) == {f"msg-{pk}" for pk in ids}  # every message reached the provider
    # A provider call is repeated only with the same idempotency key (the webhook-id above is the
    # key), and on PostgreSQL only for a message in flight at the kill (its calls made, not yet
    # recorded). (On SQLite a batch whose record hits "database is locked" among three writing
    # processes is retried by the stuck-message sweeper too.)
    resent = {key for key, n in calls.items() if n > 1}
    if connection.vendor == "postgresql":
        assert resent <= in_flight and all(calls[key] == 2 for key in resent)
    tick()
    broadcast.refresh_from_db()
    assert broadcast.status == "completed"


def test_cancel_mid_way_stops_the_rest(tmp_path, http_server):
    http_server.default = Reply(delay=0.02)
    tenant = webhook_tenant(http_server)
    segment_with(tenant, many_recipients(tenant, 2000))
    worker = WorkerProcess(tmp_path / "worker.log", connection.settings_dict["NAME"], WORKER_ENV)
    worker.start()
    try:
        broadcast = start(tenant, segment_key="everyone")
        wait_for(lambda: count(broadcast, status="sent") >= 50, timeout=60, message="the first sends")
        services.broadcast_cancel(broadcast=broadcast)
        in_flight = ids(broadcast, status="sending")
        wait_for(lambda: not count(broadcast, status__in=["sending", "queued"]), timeout=60,
                 message="sends in flight to end")
        time.sleep(2)
        cancelled, sent = ids(broadcast, status="cancelled"), ids(broadcast, status="sent")
        assert len(cancelled) > 500 and sent and not cancelled & in_flight
        # Everything is sent or cancelled (a send in flight at the cancel may end otherwise).
        assert len(sent | cancelled | in_flight) == count(broadcast) == 2000
        # No cancelled message ever reached the provider.
        called = {r.headers["webhook-id"] for r in http_server.requests}
        assert not called & {f"msg-{pk}" for pk in cancelled}
    finally:
        worker.stop()


def test_local_time_spreads_the_sends_by_zone(celery_worker, http_server, clock_travel):
    tenant = webhook_tenant(http_server)
    now = clock.now()
    # The wall-clock time it is now in Tokyo (UTC+9, no summer time), an hour from now: Tokyo's
    # recipients get it in an hour; Berlin's and New York's when that hour comes there.
    wall = (now.astimezone(UTC) + timedelta(hours=9 + 1)).replace(second=0, microsecond=0)
    zones = {"Asia/Tokyo": 3, "Europe/Berlin": 3, "America/New_York": 3}
    for zone, n in zones.items():
        for i in range(n):
            RecipientFactory(tenant=tenant, external_id=f"{zone}-{i}", timezone=zone)
    broadcast = start(tenant, external_ids=[f"{z}-{i}" for z, n in zones.items() for i in range(n)],
                      send_at=datetime(wall.year, wall.month, wall.day, wall.hour, wall.minute, tzinfo=UTC),
                      local_time=True)
    with transaction.atomic():
        tick()  # due (14 hours ahead of the wall clock in UTC): the fan-out runs in the worker
    wait_for(lambda: Broadcast.objects.get(pk=broadcast.pk).fanned_out_at, timeout=30, message="fan-out")

    def sent_zones():
        return collections.Counter(z.rsplit("-", 1)[0] for z in Message.objects.filter(
            broadcast=broadcast, status="sent").values_list("recipient__external_id", flat=True))

    assert sent_zones() == {}
    send_at = {m.recipient.timezone: m.send_at for m in Message.objects.filter(broadcast=broadcast)
               .select_related("recipient")}
    assert send_at["Asia/Tokyo"] < send_at["Europe/Berlin"] < send_at["America/New_York"]
    for zone in zones:
        clock_travel(seconds=(send_at[zone] - clock.now()).total_seconds() + 1)
        with transaction.atomic():
            tick()
        wait_for(lambda zone=zone: sent_zones()[zone] == 3, timeout=30, message=f"{zone}'s sends")
        assert sum(sent_zones().values()) == 3 * (list(zones).index(zone) + 1)  # later zones wait
