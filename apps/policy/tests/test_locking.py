"""The recipient lock's transaction (services._under_recipient_lock, and PolicyBatch's early
lock): committed when messages pass, rolled back — never left open — when deciding fails."""

import uuid
from datetime import UTC, datetime, time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core import clock
from apps.delivery.models import ProviderConfig
from apps.messaging import pipeline
from apps.messaging.models import Message
from apps.messaging.pipeline import ADDRESS, claim
from apps.messaging.services import message_create
from apps.policy import services
from apps.policy.models import PolicySettings
from apps.policy.selectors import PolicyLookup, policy_version
from apps.policy.tests.factories import PolicySettingsFactory
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db(transaction=True)  # as the pipeline runs it: no outer transaction


def message_for(recipient):
    return Message.objects.create(tenant=recipient.tenant, recipient=recipient, channels=["email"],
                                  dedupe_key=f"lock:{recipient.pk}")


def in_transaction() -> bool:
    if connection.vendor == "postgresql":
        from psycopg.pq import TransactionStatus

        return connection.connection.info.transaction_status != TransactionStatus.IDLE
    return connection.connection.in_transaction


class Query:
    """Stands for services._Recent: the statement run under the lock."""

    def __init__(self, sql, params):
        self.sql, self.params = sql, params

    def statement(self, cursor):
        return self.sql, self.params


def lock(message, sql, params, decide):
    return services._under_recipient_lock([message.recipient_id], Query(sql, params), decide, clock.now())


def test_a_message_that_passes_is_stamped_and_the_transaction_committed():
    message = message_for(RecipientFactory())
    seen = []
    passed = lock(message, "SELECT %s", [7], lambda rows: seen.extend(rows) or [(message.pk, "sms")])
    assert passed == [(message.pk, "sms")] and [tuple(r) for r in seen] == [(7,)]
    assert not in_transaction()
    stamped = Message.objects.get(pk=message.pk)
    assert stamped.channel == "sms" and stamped.sent_at is not None


def test_messages_passing_on_different_channels_are_each_stamped_with_their_own():
    recipient = RecipientFactory()
    first, second = message_for(recipient), Message.objects.create(
        tenant=recipient.tenant, recipient=recipient, channels=["email", "sms"], dedupe_key="lock:second")
    lock(first, "SELECT 1", [], lambda rows: [(first.pk, "sms"), (second.pk, "email")])
    assert {m.pk: m.channel for m in Message.objects.filter(sent_at__isnull=False)} == {
        first.pk: "sms", second.pk: "email"}
    assert not in_transaction()


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


# PolicyBatch takes the lock itself, with its reads, when the tenant's policy (cached in this
# process) has rules or caps: the pipeline decides a lone message in two round trips.

postgresql_only = pytest.mark.skipif("connection.vendor != 'postgresql'",
                                     reason="the early lock is PostgreSQL's path")


@pytest.fixture
def capped():
    """A recipient whose tenant caps messages at 2 a day, its policy cached as a worker has it
    after its first batch."""
    tenant = TenantFactory()
    ProviderConfig.objects.create(tenant=tenant, name="mail", channel="email", kind="log")
    PolicySettingsFactory(tenant=tenant, cap_per_day=2)
    recipient = RecipientFactory(tenant=tenant)
    PolicyLookup(policy_version())(tenant=tenant)
    return recipient


def queued(recipient):
    return message_create(message=Message(
        tenant=recipient.tenant, recipient=recipient, channels=["email"], dedupe_key=f"early:{uuid.uuid4()}",
        content={"email": {"subject": "Hi", "text": "Hello"}}))


def sent_through_the_pipeline(recipient):
    message = queued(recipient)
    pipeline.message_send(message_id=message.pk)
    message.refresh_from_db()
    return message


@postgresql_only
def test_a_lone_message_is_decided_in_two_round_trips_and_the_cap_still_counts(capped, monkeypatch):
    # As on a table of a live size, where the count's generic plan is on message_slots (below),
    # with connections kept (the tests' settings close them after each request).
    monkeypatch.setattr(services, "_on_slots_index", lambda plan: True)
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    message = claim(queued(capped).pk)
    connection.close()  # a new connection, whose first batch prepares the count
    with CaptureQueriesContext(connection) as queries:
        batch = services.PolicyBatch([message], ADDRESS)
        assert in_transaction()  # locked, counted and read in one round trip
        assert batch.timing_many([(message, "email")]) == {message.pk: None}
    statements, count, *decided = [q["sql"] for q in queries]
    # Once per connection: the lock's, the stamp's and the three reads' statements, then the count's.
    assert statements.startswith("PREPARE signalbox_") and statements.count("PREPARE") == 5
    assert count.startswith("PREPARE signalbox_recent_") and "EXPLAIN EXECUTE" in count
    assert len(decided) == 2 and decided[0].startswith("BEGIN") and "EXECUTE signalbox_recent_" in decided[0]
    sent = [part for sql in decided for part in sql.split("; ")]
    assert [part.split()[0] for part in sent] == ["BEGIN", "SET", "SET", *["EXECUTE"] * 6, "COMMIT"]
    assert not in_transaction()
    assert Message.objects.get(pk=message.pk).sent_at is not None  # its slot, taken
    # The slots taken this way are counted: the third message of the day waits. The statement
    # stays prepared on the connection.
    with CaptureQueriesContext(connection) as later:
        assert sent_through_the_pipeline(capped).status == "sent"
        third = sent_through_the_pipeline(capped)
    assert third.status == "scheduled" and third.timeline.last().reason_code == "frequency_cap"
    assert not [q for q in later if "PREPARE" in q["sql"]]
    assert [q for q in later if "EXECUTE signalbox_recent_" in q["sql"]]


@postgresql_only
def test_the_count_is_not_prepared_where_its_generic_plan_would_not_use_its_index(capped, monkeypatch):
    """A generic plan is kept while the table's statistics stand: made on a near-empty table it
    scans an index of the tenant's messages, which grows with the table. Then it runs plain.
    So it does where connections are not kept (each batch would prepare it)."""
    message = claim(queued(capped).pk)
    recent = services._Recent.for_batch([message], PolicyLookup.cached({capped.tenant_id}), clock.now())
    with CaptureQueriesContext(connection) as queries, connection.cursor() as cursor:
        assert recent.statement(cursor) == (recent.sql, recent.params)
        assert not queries.captured_queries  # CONN_MAX_AGE = 0 here
        monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
        assert recent.statement(cursor) == (recent.sql, recent.params)
        assert "EXPLAIN EXECUTE" in queries.captured_queries[0]["sql"]
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'signalbox_recent_%%'")
        assert cursor.fetchone()[0] == 0  # deallocated
    assert sent_through_the_pipeline(capped).status == "sent"


@postgresql_only
def test_an_error_between_the_reads_and_timing_rolls_back_and_releases_the_lock(capped, monkeypatch):
    message = queued(capped)

    def fails(message, decisions):
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "route", fails)
    with pytest.raises(RuntimeError):
        pipeline.message_send(message_id=message.pk)
    assert not in_transaction()
    monkeypatch.undo()
    # Released: the next message for this recipient is decided (and sent) at once.
    assert sent_through_the_pipeline(capped).status == "sent"


@postgresql_only
def test_a_policy_edited_since_this_process_cached_it_is_the_one_applied(capped):
    assert sent_through_the_pipeline(capped).status == "sent"
    settings = PolicySettings.objects.get(tenant=capped.tenant)
    settings.cap_per_week = 1  # a period the cached policy did not count
    settings.save()
    second = sent_through_the_pipeline(capped)
    assert second.status == "scheduled"
    assert "1 per week" in second.timeline.last().reason


@postgresql_only
def test_quiet_hours_hold_a_message_after_the_lock_is_released(capped, clock_travel):
    settings = PolicySettings.objects.get(tenant=capped.tenant)
    settings.quiet_start, settings.quiet_end = time(21), time(8)
    settings.save()
    PolicyLookup(policy_version())(tenant=capped.tenant)  # cached again, as edited
    clock_travel(seconds=(datetime(2030, 1, 15, 22, 0, tzinfo=UTC) - clock.now()).total_seconds())
    message = sent_through_the_pipeline(capped)
    assert message.status == "scheduled" and message.timeline.last().reason_code == "quiet_hours"
    assert not in_transaction()
