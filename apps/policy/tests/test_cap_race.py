"""Two workers deciding for the same recipient must never both pass a cap (docs/policy.md)."""

import multiprocessing
import threading
import uuid

import pytest
from django.db import connection

from apps.delivery.models import ProviderConfig
from apps.messaging import pipeline, services
from apps.messaging.models import Message
from apps.policy.models import Cap
from apps.policy.tests.factories import PolicySettingsFactory
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
SENDS = 20
PROCESSES = 10  # SENDS / PROCESSES rounds


def settings_cap(tenant):
    PolicySettingsFactory(tenant=tenant, cap_per_day=3)
    return "3 per day"


def channel_cap(tenant):
    Cap.objects.create(tenant=tenant, scope="channel", key="email", period="day", limit=3)
    return "3 per day on email"


def category_cap(tenant):
    Cap.objects.create(tenant=tenant, scope="category", key="general", period="week", limit=3)
    return "3 per week for general"


@pytest.mark.parametrize("make_cap", [settings_cap, channel_cap, category_cap])
def test_20_concurrent_sends_for_one_recipient_with_a_cap_of_3_send_exactly_3(make_cap):
    tenant = TenantFactory()
    ProviderConfig.objects.create(tenant=tenant, name="mail", channel="email", kind="log")
    words = make_cap(tenant)
    recipient = RecipientFactory(tenant=tenant)
    ids = [services.message_create(message=Message(
        tenant=tenant, recipient=recipient, channels=["email"], dedupe_key=f"race:{uuid.uuid4()}",
        content={"email": {"subject": "Hi", "text": "Hello"}})).pk for _ in range(SENDS)]
    start, errors = threading.Barrier(SENDS), []

    def worker(message_id):
        try:
            start.wait(10)
            pipeline.message_send(message_id=message_id)
        except Exception as error:  # reported below; a thread's exception is otherwise lost
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(pk,)) for pk in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    messages = list(Message.objects.filter(pk__in=ids))
    assert sorted(m.status for m in messages).count("sent") == 3
    held = [m for m in messages if m.status != "sent"]
    assert len(held) == 17 and {m.status for m in held} == {"scheduled"}
    for message in held:
        assert message.timeline.last().reason.startswith(f"deferred: frequency cap of {words} reached")


def _send_in_child(tenant_id, message_ids, start, failures):
    """In a forked process: its own database connection (the parent closed its own before the
    fork, so none is shared) and caches, warmed up so that the processes, released together,
    reach the decision together; then the sends, one per round."""
    from django.db import connections

    from apps.delivery.selectors import ProviderLookup
    from apps.policy.selectors import PolicyLookup
    from apps.tenants.selectors import tenant_get_cached

    pipeline._pool = None  # a thread pool's threads do not survive a fork
    try:
        tenant = tenant_get_cached(tenant_id=tenant_id)
        PolicyLookup()(tenant=tenant), ProviderLookup()(tenant=tenant, channel="email")
        for message_id in message_ids:  # every process has as many: each round starts together
            start.wait(30)
            pipeline.message_send(message_id=message_id)
    except Exception as error:  # reported by the parent
        failures.put(repr(error))
    finally:
        connections.close_all()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="forked processes share no SQLite database")
def test_separate_processes_racing_for_one_recipient_never_pass_the_cap_together():
    """Several OS processes (as several Celery workers on several machines would be), each with its
    own connection: the recipient's row lock is what serialises them, not anything in Python."""
    from django.db import connections

    tenant = TenantFactory()
    ProviderConfig.objects.create(tenant=tenant, name="mail", channel="email", kind="log")
    words = settings_cap(tenant)
    recipient = RecipientFactory(tenant=tenant)
    ids = [services.message_create(message=Message(
        tenant=tenant, recipient=recipient, channels=["email"], dedupe_key=f"race:{uuid.uuid4()}",
        content={"email": {"subject": "Hi", "text": "Hello"}})).pk for _ in range(SENDS)]
    context = multiprocessing.get_context("fork")
    start, failures = context.Barrier(PROCESSES), context.Queue()
    connections.close_all()
    children = [context.Process(target=_send_in_child, args=(tenant.pk, ids[n::PROCESSES], start, failures))
                for n in range(PROCESSES)]
    for child in children:
        child.start()
    for child in children:
        child.join(90)
    assert [child.exitcode for child in children] == [0] * PROCESSES
    assert failures.empty(), failures.get()
    messages = list(Message.objects.filter(pk__in=ids))
    assert [m.status for m in messages].count("sent") == 3
    held = [m for m in messages if m.status != "sent"]
    assert len(held) == 17 and {m.status for m in held} == {"scheduled"}
    for message in held:
        assert message.timeline.last().reason.startswith(f"deferred: frequency cap of {words} reached")
