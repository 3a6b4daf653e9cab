"""The pipeline with in-process test providers: routing, failover, retries, expiry."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core import clock
from apps.delivery.breaker import Breakers
from apps.delivery.models import ProviderConfig
from apps.delivery.providers import registry
from apps.delivery.providers.base import Provider, ProviderError, ProviderResult
from apps.messaging import pipeline, services
from apps.messaging.models import Message, Status
from apps.messaging.services import IllegalTransition
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db

calls: list[tuple[str, str, str]] = []
script: dict[str, list] = {}


class ScriptedProvider(Provider):
    """Answers from `script[provider name]`: "ok", or a ProviderError to raise."""

    kind = "scripted"
    channels = frozenset({"email", "sms", "webhook", "chat", "push", "inbox"})

    def send(self, rendered, *, idempotency_key):
        calls.append((self.name, rendered.channel, idempotency_key))
        answers = script.get(f"{self.name}:{rendered.to}") or script.get(self.name)  # by address first
        answer = answers.pop(0) if answers else "ok"
        if isinstance(answer, ProviderError):
            raise answer
        return ProviderResult(provider_message_id=f"{self.name}-1", response_code=202)


@pytest.fixture(autouse=True)
def scripted(monkeypatch):
    calls.clear()
    script.clear()
    monkeypatch.setitem(registry.PROVIDERS, "scripted", f"{__name__}.ScriptedProvider")


@pytest.fixture
def tenant():
    return TenantFactory()


def provider(tenant, name, channel="email", position=0):
    return ProviderConfig.objects.create(tenant=tenant, name=name, channel=channel, kind="scripted",
                                         position=position)


def message(tenant, channels=("email",), email="ada@example.com", **fields):
    recipient = RecipientFactory(tenant=tenant, email=email, phone="+14155550101")
    content = {"email": {"subject": "Hi", "text": "Hello"}, "sms": {"text": "Hi"}}
    return services.message_create(message=Message(
        tenant=tenant, recipient=recipient, channels=list(channels),
        content={c: content[c] for c in channels}, dedupe_key=f"test:{uuid.uuid4()}",
        **fields))


def statuses(msg):
    return [e.status for e in msg.timeline.all()]


def test_a_message_is_sent_by_the_first_provider(tenant):
    provider(tenant, "primary")
    provider(tenant, "secondary", position=1)
    msg = message(tenant)
    assert pipeline.message_send(message_id=msg.pk).status == Status.SENT
    msg.refresh_from_db()
    assert (msg.status, msg.channel, msg.provider, msg.provider_message_id) == (
        "sent", "email", "primary", "primary-1")
    assert statuses(msg) == ["queued", "sending", "sent"]
    assert calls == [("primary", "email", f"msg-{msg.pk}")]
    assert msg.attempt_rows.get().outcome == "accepted"


def test_a_retryable_error_fails_over_to_the_next_provider(tenant):
    provider(tenant, "primary")
    provider(tenant, "secondary", position=1)
    script["primary"] = [ProviderError("503 from provider", response_code=503)]
    msg = message(tenant)
    assert pipeline.message_send(message_id=msg.pk).status == Status.SENT
    msg.refresh_from_db()
    assert msg.provider == "secondary"
    assert [(a.provider, a.outcome, a.response_code) for a in msg.attempt_rows.all()] == [
        ("primary", "retryable", 503), ("secondary", "accepted", 202)]


def test_an_ambiguous_error_is_retried_on_the_same_provider_with_the_same_key(tenant, clock_travel):
    provider(tenant, "primary")
    provider(tenant, "secondary", position=1)
    script["primary"] = [ProviderError("read timeout", ambiguous=True)]
    msg = message(tenant)
    outcome = pipeline.message_send(message_id=msg.pk)
    assert outcome.status == Status.QUEUED and outcome.retry_in is not None
    assert [c[0] for c in calls] == ["primary"]  # no failover
    clock_travel(seconds=outcome.retry_in + 1)
    assert pipeline.message_send(message_id=msg.pk).status == Status.SENT
    assert calls == [("primary", "email", f"msg-{msg.pk}")] * 2


def test_permanent_failure_on_every_provider_moves_to_the_next_channel(tenant):
    provider(tenant, "mail")
    provider(tenant, "texts", channel="sms")
    script["mail"] = [ProviderError("invalid address", permanent=True, response_code=400)]
    msg = message(tenant, channels=("email", "sms"))
    assert pipeline.message_send(message_id=msg.pk).status == Status.SENT
    msg.refresh_from_db()
    assert (msg.channel, msg.provider) == ("sms", "texts")
    assert statuses(msg) == ["queued", "sending", "rerouted", "sent"]
    assert Message.objects.filter(recipient=msg.recipient).count() == 1  # one row, rerouted


def test_retries_back_off_then_fail_after_the_last_attempt(tenant, settings, clock_travel):
    settings.SIGNALBOX_MESSAGE_MAX_ATTEMPTS = 3
    provider(tenant, "flaky")
    script["flaky"] = [ProviderError("503", response_code=503)] * 3
    msg = message(tenant)
    for _ in range(2):
        outcome = pipeline.message_send(message_id=msg.pk)
        assert outcome.status == Status.QUEUED
        assert pipeline.message_send(message_id=msg.pk) is None  # not due yet
        clock_travel(seconds=outcome.retry_in + 1)
    assert pipeline.message_send(message_id=msg.pk).status == Status.FAILED
    msg.refresh_from_db()
    assert msg.attempts == 3 and msg.timeline.last().reason_code == "attempts_exhausted"


def test_retry_after_is_honoured(tenant):
    provider(tenant, "limited")
    script["limited"] = [ProviderError("429", response_code=429, retry_after=120)]
    outcome = pipeline.message_send(message_id=message(tenant).pk)
    assert outcome.retry_in >= 120


def test_no_eligible_channel_fails_with_the_reasons(tenant):
    msg = message(tenant, channels=("email",))
    assert pipeline.message_send(message_id=msg.pk).status == Status.FAILED
    assert msg.timeline.last().detail == {"channels": {"email": "no email provider is configured"}}


def test_an_expired_message_is_never_sent(tenant):
    provider(tenant, "primary")
    msg = message(tenant, expires_at=clock.now() - timedelta(seconds=1))
    assert pipeline.message_send(message_id=msg.pk).status == Status.EXPIRED
    assert calls == []


def test_test_mode_sends_only_through_the_log_provider(tenant):
    provider(tenant, "real")
    msg = message(tenant, test_mode=True)
    assert pipeline.message_send(message_id=msg.pk).status == Status.SENT
    msg.refresh_from_db()
    assert msg.provider == "log" and calls == []
    assert msg.attempt_rows.get().request_summary["to"] == "ada@example.com"


def test_a_sub_tenant_inherits_its_parents_providers_unless_it_has_its_own(tenant):
    child = TenantFactory(parent=tenant)
    provider(tenant, "parent-mail")
    msg = message(child)
    pipeline.message_send(message_id=msg.pk)
    assert calls[-1][0] == "parent-mail"
    provider(child, "child-mail")
    msg = message(child)
    pipeline.message_send(message_id=msg.pk)
    assert calls[-1][0] == "child-mail"


def test_only_one_worker_claims_a_message(tenant):
    provider(tenant, "primary")
    msg = message(tenant)
    assert pipeline.claim(msg.pk) is not None
    assert pipeline.claim(msg.pk) is None


def test_illegal_transitions_are_refused(tenant):
    msg = message(tenant)
    with pytest.raises(IllegalTransition):
        services.message_transition(message=msg, to=Status.DELIVERED)
    msg.refresh_from_db()
    assert msg.status == Status.QUEUED


def test_scheduled_messages_are_released_when_due(tenant, clock_travel, django_capture_on_commit_callbacks):
    provider(tenant, "primary")
    msg = message(tenant, send_at=clock.now() + timedelta(hours=1))
    assert msg.status == Status.SCHEDULED
    assert services.messages_release_due() == 0
    clock_travel(seconds=3601)
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.messages_release_due() == 1
    assert len(callbacks) == 1
    assert pipeline.message_send(message_id=msg.pk).status == Status.SENT


def test_accepted_sends_are_stored_together_and_a_message_taken_back_is_not_moved(tenant):
    """record_accepted: every call's attempt in order, and `sent` (with its timeline entry) only
    for the messages still `sending` — here the rescue took one back while its call ran."""
    configs = [provider(tenant, "primary"), provider(tenant, "secondary", position=1)]
    first, second = message(tenant), message(tenant, email="bo@example.com")
    script["primary:ada@example.com"] = [ProviderError("503 from provider", response_code=503)]
    breakers = Breakers([(tenant.pk, c.pk) for c in configs])
    items = []
    for claimed in pipeline.claim_many([first.pk, second.pk]):
        rendered = pipeline.render(claimed, "email")
        items.append((claimed, rendered, pipeline.call_providers(claimed, rendered, configs, breakers)))
    Message.objects.filter(pk=second.pk).update(status=Status.QUEUED)  # as messages_rescue_stuck does
    assert pipeline.record_accepted(items) == {first.pk: pipeline.Outcome(Status.SENT)}
    first.refresh_from_db()
    assert (first.status, first.channel, first.provider, first.provider_message_id, first.rendered) == (
        "sent", "email", "secondary", "secondary-1",
        {"to": "ada@example.com", "subject": "Hi", "text": "Hello"})
    assert [(a.provider, a.outcome, a.response_code, a.error_class, a.request_summary, a.channel)
            for a in first.attempt_rows.all()] == [
        ("primary", "retryable", 503, "ProviderError", {"to": "ada@example.com"}, "email"),
        ("secondary", "accepted", 202, "", {}, "email")]
    assert first.timeline.last().reason == "Accepted by secondary."
    assert first.sent_at == first.timeline.last().created_at
    second.refresh_from_db()
    assert (second.status, statuses(second)) == ("queued", ["queued", "sending"])
    assert [(a.provider, a.outcome) for a in second.attempt_rows.all()] == [("primary", "accepted")]


def test_a_message_stuck_in_sending_is_rescued(tenant, clock_travel, settings):
    settings.SIGNALBOX_MESSAGE_STUCK_SECONDS = 60
    provider(tenant, "primary")
    msg = message(tenant)
    pipeline.claim(msg.pk)  # the worker dies here
    assert services.messages_rescue_stuck() == 0
    clock_travel(seconds=61)
    assert services.messages_rescue_stuck() == 1
    assert pipeline.message_send(message_id=msg.pk).status == Status.SENT
    assert statuses(Message.objects.get(pk=msg.pk))[-3:] == ["queued", "sending", "sent"]


def test_the_breaker_opens_after_repeated_failures_and_closes_after_a_good_probe(
    tenant, settings, clock_travel
):
    settings.SIGNALBOX_BREAKER_THRESHOLD = 2
    settings.SIGNALBOX_BREAKER_COOL_DOWN_SECONDS = 30
    provider(tenant, "primary")
    provider(tenant, "secondary", position=1)
    script["primary"] = [ProviderError("503", response_code=503)] * 2
    for _ in range(2):
        assert pipeline.message_send(message_id=message(tenant).pk).status == Status.SENT
    assert [c[0] for c in calls] == ["primary", "secondary", "primary", "secondary"]
    calls.clear()
    pipeline.message_send(message_id=message(tenant).pk)  # open: primary is not called
    assert [c[0] for c in calls] == ["secondary"]
    clock_travel(seconds=31)  # half-open: one probe reaches primary, succeeds, closes it
    calls.clear()
    for _ in range(2):
        pipeline.message_send(message_id=message(tenant).pk)
    assert [c[0] for c in calls] == ["primary", "primary"]


def test_a_channel_whose_providers_are_all_down_falls_back_or_waits(tenant, settings):
    settings.SIGNALBOX_BREAKER_THRESHOLD = 1
    provider(tenant, "mail")
    script["mail"] = [ProviderError("503", response_code=503)]
    pipeline.message_send(message_id=message(tenant).pk)  # opens mail's breaker; retried later
    provider(tenant, "texts", channel="sms")
    fallback = message(tenant, channels=("email", "sms"))
    assert pipeline.message_send(message_id=fallback.pk).status == Status.SENT
    fallback.refresh_from_db()
    assert fallback.channel == "sms"
    waiting = message(tenant, channels=("email",))
    outcome = pipeline.message_send(message_id=waiting.pk)
    assert outcome.status == Status.QUEUED
    assert outcome.retry_in >= settings.SIGNALBOX_BREAKER_COOL_DOWN_SECONDS


def test_a_batch_is_sent_together_and_its_uncommon_paths_one_by_one(tenant):
    provider(tenant, "primary")
    provider(tenant, "secondary", position=1)
    provider(tenant, "texts", channel="sms")
    plain = [message(tenant, channels=("email", "sms"), email=f"u{i}@example.com") for i in range(20)]
    failover = message(tenant, email="failover@example.com")
    script["primary:failover@example.com"] = [ProviderError("503", response_code=503)]
    rerouted = message(tenant, channels=("email", "sms"), email="bad@example.com")
    script["primary:bad@example.com"] = [ProviderError("invalid", permanent=True, response_code=422)]
    script["secondary:bad@example.com"] = [ProviderError("invalid", permanent=True, response_code=422)]
    expired = message(tenant, email="late@example.com", expires_at=clock.now() - timedelta(seconds=1))
    ids = [m.pk for m in [*plain, failover, rerouted, expired]]
    with CaptureQueriesContext(connection) as queries:
        pipeline.messages_send(message_ids=[m.pk for m in plain])  # the common path, in bulk
    # A few statements for the batch (SQLite: one UPDATE per message); the cache is not counted.
    # On PostgreSQL: the claim, loading the claimed, policy's one round trip per batch (preferences,
    # the suppression list) and, on a cold cache as here, 5 more for the tenant's categories,
    # settings, rules, flag rules and caps; then one statement storing the accepted sends.
    counted = [q for q in queries.captured_queries if "signalbox_cache" not in q["sql"]]
    assert len(counted) <= (11 if connection.vendor == "postgresql" else 19 + len(plain)), counted
    assert Message.objects.filter(pk__in=[m.pk for m in plain], status=Status.SENT).count() == 20
    outcomes = pipeline.messages_send(message_ids=ids)
    assert {pk: o.status for pk, o in outcomes.items()} == {
        failover.pk: Status.SENT, rerouted.pk: Status.SENT, expired.pk: Status.EXPIRED}  # plain: done
    failover.refresh_from_db()
    rerouted.refresh_from_db()
    assert [(a.provider, a.outcome) for a in failover.attempt_rows.all()] == [
        ("primary", "retryable"), ("secondary", "accepted")]
    assert (rerouted.channel, rerouted.provider) == ("sms", "texts")
    assert statuses(rerouted) == ["queued", "sending", "rerouted", "sent"]
    assert not Message.objects.get(pk=expired.pk).attempt_rows.exists()
    sent = Message.objects.get(pk=plain[0].pk)
    assert (sent.channel, sent.provider, sent.provider_message_id, sent.rendered) == (
        "email", "primary", "primary-1", {"to": "u0@example.com", "subject": "Hi", "text": "Hello"})
    assert statuses(sent) == ["queued", "sending", "sent"]
