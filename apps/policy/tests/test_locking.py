"""The recipient lock's transaction (services._under_recipient_lock): committed when messages
pass, rolled back — never left open — when deciding fails."""

import pytest
from django.db import connection

from apps.core import clock
from apps.messaging.models import Message
from apps.policy import services
from apps.recipients.tests.factories import RecipientFactory

pytestmark = pytest.mark.django_db(transaction=True)  # as the pipeline runs it: no outer transaction


def message_for(recipient):
    return Message.objects.create(tenant=recipient.tenant, recipient=recipient, channels=["email"],
                                  dedupe_key=f"lock:{recipient.pk}")


def in_transaction() -> bool:
    if connection.vendor == "postgresql":
        from psycopg.pq import TransactionStatus

        return connection.connection.info.transaction_status != TransactionStatus.IDLE
    return connection.connection.in_transaction


def lock(message, sql, params, decide):
    return services._under_recipient_lock([message.recipient_id], sql, params, decide, clock.now())


def test_a_message_that_passes_is_stamped_and_the_transaction_committed():
    message = message_for(RecipientFactory())
    seen = []
    passed = lock(message, "SELECT %s", [7], lambda rows: seen.extend(rows) or [(message.pk, "sms")])
    assert passed == [(message.pk, "sms")] and [tuple(r) for r in seen] == [(7,)]
    assert not in_transaction()
    stamped = Message.objects.get(pk=message.pk)
    assert stamped.channel == "sms" and stamped.sent_at is not None


def test_a_message_that_does_not_pass_is_not_stamped():
    message = message_for(RecipientFactory())
    passed = lock(message, "SELECT 1", [], lambda rows: [])
    assert passed == []
    assert not in_transaction()
    assert Message.objects.get(pk=message.pk).channel == ""


def test_an_error_while_deciding_rolls_back_and_leaves_no_transaction_open():
    message = message_for(RecipientFactory())

    def fails(rows):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        lock(message, "SELECT 1", [], fails)
    assert not in_transaction()
    assert Message.objects.get(pk=message.pk).channel == ""
    # The connection is usable and the lock released: the next decision goes through.
    assert lock(message, "SELECT 1", [], lambda rows: [(message.pk, "sms")])
