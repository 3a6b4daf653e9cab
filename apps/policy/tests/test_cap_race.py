"""Two workers deciding for the same recipient must never both pass a cap (docs/policy.md)."""

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
