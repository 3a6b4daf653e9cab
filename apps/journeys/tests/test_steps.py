"""Digest, throttle, webhook and update-profile steps, on the database, with tick() called
directly (the webhook steps call a local HTTP server started by the test)."""

import json

import pytest

from apps.content.tests.factories import TemplateFactory, published
from apps.core import clock
from apps.core.services import tick
from apps.delivery.models import ProviderConfig
from apps.events.models import Event
from apps.events.services import EventDraft, events_process, events_record
from apps.journeys.models import JourneyRun, JourneyRunStep
from apps.journeys.tests.factories import active_journey, templates
from apps.messaging import pipeline
from apps.messaging.models import Message
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.tests.factories import TenantFactory
from tests.fixtures.servers import Reply

pytestmark = pytest.mark.django_db

DIGEST = {
    "trigger": {"event": "comment.created"},
    "reentry": {"rule": "every_time"},
    "steps": [
        {"id": "collect", "type": "digest", "key": "{{ data.thread_id }}", "window": "10m", "next": "mail"},
        {"id": "mail", "type": "send", "template": "comment-digest", "channels": ["email"]},
    ],
}
DIGEST_BODY = ("<mj-text>{{ batch.count }} new comments on {{ batch.key }}:</mj-text>"
               "{% for item in batch.items %}<mj-text>{{ item.author }}: {{ item.text }}</mj-text>"
               "{% endfor %}")


@pytest.fixture
def tenant():
    tenant = TenantFactory()
    templates(tenant, "plain", "other")
    published(TemplateFactory(tenant=tenant, key="comment-digest",
                              email_subject="{{ batch.count }} new comments", email_body=DIGEST_BODY))
    published(TemplateFactory(tenant=tenant, key="plan-sms",
                              sms_text="Your plan: {{ data.webhooks.crm.body.plan }}"))
    for channel in ("email", "sms"):
        ProviderConfig.objects.create(tenant=tenant, name=f"log-{channel}", channel=channel, kind="log")
    return tenant


@pytest.fixture
def ada(tenant):
    return RecipientFactory(tenant=tenant, external_id="ada", email="ada@example.com", phone="+14155550101",
                            attributes={"plan": "free", "trial": True})


def send_event(tenant, recipient, name, **properties):
    events_record(tenant=tenant, source=Event.Source.API, drafts=[EventDraft(
        name=name, recipient_id=recipient.pk, properties=properties)])
    events_process()


def sent(recipient) -> list[Message]:
    """The recipient's messages, sent through the pipeline (log providers), in order."""
    messages = list(Message.objects.filter(recipient=recipient).order_by("id"))
    pipeline.messages_send(message_ids=[m.pk for m in messages if m.status == "queued"])
    for message in messages:
        message.refresh_from_db()
    return messages


# --- Digest ---------------------------------------------------------------------------------------

def test_a_digest_collects_a_threads_comments_for_its_window_and_sends_one_email(tenant, ada, clock_travel):
    journey = active_journey(tenant, DIGEST)
    for n in range(5):
        send_event(tenant, ada, "comment.created", thread_id="t1", author=f"user{n}", text=f"comment {n}")
        if n == 2:
            send_event(tenant, ada, "comment.created", thread_id="t2", author="zoe", text="elsewhere")
        clock_travel(seconds=60)
    runs = list(journey.runs.order_by("id"))
    assert len(runs) == 2  # one per thread: later comments joined the open digest
    assert [(r.current_step, r.context["batch"]["key"], r.context["batch"]["count"]) for r in runs] == [
        ("collect", "t1", 5), ("collect", "t2", 1)]
    tick()
    assert not Message.objects.filter(recipient=ada).exists()  # 5 minutes in: still collecting

    clock_travel(seconds=5 * 60)  # the first thread's window ends (10 minutes after its first comment)
    tick()
    [first] = sent(ada)
    assert first.rendered["subject"] == "5 new comments"
    assert [f"user{n}: comment {n}" in first.rendered["text"] for n in range(5)] == [True] * 5
    assert "zoe" not in first.rendered["text"]

    clock_travel(seconds=3 * 60)
    tick()
    first, second = sent(ada)
    assert second.rendered["subject"] == "1 new comments" and "zoe: elsewhere" in second.rendered["text"]
    assert [r.status for r in journey.runs.order_by("id")] == ["completed", "completed"]
    path = JourneyRunStep.objects.filter(run=runs[0], step__key="collect").get()
    assert (path.outcome, path.reason) == ("passed", "5 items")

    # After the digest was sent, a new comment on the same thread opens a new digest.
    send_event(tenant, ada, "comment.created", thread_id="t1", author="late", text="again")
    assert journey.runs.count() == 3


def test_a_digest_goes_on_at_once_when_it_reaches_its_maximum_and_keeps_its_trigger_rules(
        tenant, ada, clock_travel):
    definition = {**DIGEST, "trigger": {"event": "comment.created", "conditions": {
        "field": "trigger.properties.muted", "op": "not_exists"}}, "steps": [
        {**DIGEST["steps"][0], "max_items": 3}, DIGEST["steps"][1]]}
    journey = active_journey(tenant, definition)
    send_event(tenant, ada, "comment.created", thread_id="t1", author="a", text="one")
    send_event(tenant, ada, "comment.created", thread_id="t1", author="b", text="muted", muted=True)
    send_event(tenant, ada, "comment.created", thread_id="t1", author="c", text="two")
    assert not Message.objects.filter(recipient=ada).exists()
    send_event(tenant, ada, "comment.created", thread_id="t1", author="d", text="three")
    [mail] = sent(ada)
    assert mail.rendered["subject"] == "3 new comments" and "muted" not in mail.rendered["text"]
    assert journey.runs.get().status == "completed"


def test_a_digest_until_a_time_of_day_in_the_recipients_zone(tenant, ada):
    ada.timezone = "Asia/Tokyo"
    ada.save()
    definition = {**DIGEST, "steps": [
        {"id": "collect", "type": "digest", "key": "", "until_time": "18:00", "next": "mail"},
        DIGEST["steps"][1]]}
    journey = active_journey(tenant, definition)
    send_event(tenant, ada, "comment.created", thread_id="t1")
    send_event(tenant, ada, "comment.created", thread_id="t2")  # no key: every comment joins
    run = journey.runs.get()
    local = run.due_at.astimezone(__import__("zoneinfo").ZoneInfo("Asia/Tokyo"))
    assert (local.hour, local.minute) == (18, 0) and run.due_at > clock.now()
    assert run.context["batch"]["count"] == 2


# --- Throttle -------------------------------------------------------------------------------------

THROTTLE = {
    "trigger": {"event": "alert"},
    "reentry": {"rule": "every_time"},
    "steps": [
        {"id": "limit", "type": "throttle", "limit": 3, "window": "1h", "next": "sms"},
        {"id": "sms", "type": "send", "template": "plain", "channels": ["sms"]},
    ],
}


def test_a_throttle_lets_three_runs_an_hour_through_and_records_why_the_rest_exit(tenant, ada, clock_travel):
    journey = active_journey(tenant, THROTTLE)
    for _ in range(10):
        send_event(tenant, ada, "alert")
        clock_travel(seconds=5 * 60)
    runs = list(journey.runs.order_by("id"))
    assert len(runs) == 10
    assert [r.status for r in runs] == ["completed"] * 3 + ["exited"] * 7
    assert {r.end_reason for r in runs[3:]} == {"throttled: 3 per 1h reached"}
    assert Message.objects.filter(recipient=ada).count() == 3
    assert JourneyRunStep.objects.filter(run__journey=journey, step__key="limit", outcome="exited",
                                         reason="throttled: 3 per 1h reached").count() == 7

    clock_travel(seconds=10 * 60 + 1)  # an hour after the first run passed: one more may
    send_event(tenant, ada, "alert")
    send_event(tenant, ada, "alert")
    assert list(journey.runs.order_by("-id").values_list("status", flat=True)[:2]) == ["exited", "completed"]


def test_a_throttle_counts_per_key_and_per_recipient_and_within_one_batch(tenant, ada):
    definition = {**THROTTLE, "steps": [{**THROTTLE["steps"][0], "limit": 1, "key": "{{ data.topic }}"},
                                        THROTTLE["steps"][1]]}
    journey = active_journey(tenant, definition)
    bob = RecipientFactory(tenant=tenant, phone="+14155550102")
    # One batch of events: the consumer counts the runs it has not written yet.
    events_record(tenant=tenant, source=Event.Source.API, drafts=[
        EventDraft(name="alert", recipient_id=who.pk, properties={"topic": topic})
        for who, topic in [(ada, "db"), (ada, "db"), (ada, "disk"), (bob, "db")]])
    events_process()
    assert list(journey.runs.order_by("id").values_list("status", flat=True)) == [
        "completed", "exited", "completed", "completed"]


# --- Webhook --------------------------------------------------------------------------------------

def webhook_journey(url, **extra):
    return {
        "trigger": {"event": "signup"},
        "reentry": {"rule": "every_time"},
        "steps": [
            {"id": "crm", "type": "webhook", "method": "POST",
             "url": url + "/lookup/{{ recipient.external_id }}",
             "headers": {"X-Source": "{{ data.source }}"},
             "body": {"who": "{{ recipient.external_id }}", "source": "{{ data.source }}"},
             "next": "is-gold", **extra},
            {"id": "is-gold", "type": "branch", "default": "plain", "paths": [
                {"conditions": {"field": "webhooks.crm.body.plan", "op": "eq", "value": "gold"},
                 "next": "sms"}]},
            {"id": "sms", "type": "send", "template": "plan-sms", "channels": ["sms"]},
            {"id": "plain", "type": "send", "template": "plain", "channels": ["sms"]},
            {"id": "sorry", "type": "send", "template": "other", "channels": ["sms"]},
        ],
    }


def test_a_webhook_answer_reaches_a_branch_and_the_next_send(tenant, ada, http_server):
    http_server.script(Reply(200, {"plan": "gold", "score": 7}))
    journey = active_journey(tenant, webhook_journey(http_server.url))
    send_event(tenant, ada, "signup", source="ads")
    run = journey.runs.get()
    assert (run.status, run.current_step, run.wait_event) == ("active", "crm", "webhook:crm")
    assert not http_server.requests  # never inside the consumer's transaction

    tick()
    [request] = http_server.requests
    assert (request.method, request.path) == ("POST", "/lookup/ada")
    assert request.json() == {"who": "ada", "source": "ads"} and request.headers["X-Source"] == "ads"
    assert request.headers["Idempotency-Key"] == f"run:{run.pk}:crm:1"
    [sms] = sent(ada)
    assert sms.template_key == "plan-sms" and sms.rendered["text"] == "Your plan: gold"
    run.refresh_from_db()
    assert run.status == "completed" and run.context["webhooks"]["crm"] == {
        "status": 200, "body": {"plan": "gold", "score": 7}}
    tick()
    assert len(http_server.requests) == 1


def test_a_failing_webhook_is_retried_with_back_off_then_takes_the_failure_path(
        tenant, ada, http_server, clock_travel, settings):
    http_server.default = Reply(500, {"error": "down"})
    journey = active_journey(tenant, webhook_journey(http_server.url, on_failure="sorry"))
    send_event(tenant, ada, "signup", source="ads")
    tick()
    run = journey.runs.get()
    assert len(http_server.requests) == 1 and run.status == "active" and run.due_at > clock.now()
    assert run.context["pending_webhook"] == {"step": "crm", "attempts": 1}
    for _ in range(20):
        clock_travel(seconds=settings.SIGNALBOX_RETRY_MAX_SECONDS)
        tick()
    assert len(http_server.requests) == settings.SIGNALBOX_MESSAGE_MAX_ATTEMPTS
    [sorry] = sent(ada)
    assert sorry.template_key == "other"
    run.refresh_from_db()
    assert run.status == "completed" and run.context["webhooks"]["crm"]["status"] == 500
    path = JourneyRunStep.objects.get(run=run, step__key="crm")
    assert (path.outcome, path.reason) == ("failed", "HTTP 500")


def test_a_webhook_4xx_is_final_and_without_a_failure_path_the_run_fails(tenant, ada, http_server):
    http_server.script(Reply(404, {"error": "no such user"}))
    journey = active_journey(tenant, webhook_journey(http_server.url))
    send_event(tenant, ada, "signup")
    tick()
    tick()
    assert len(http_server.requests) == 1
    run = journey.runs.get()
    assert (run.status, run.end_reason) == ("failed", "Webhook crm: HTTP 404")
    assert not Message.objects.filter(recipient=ada).exists()


def test_a_webhook_run_stopped_by_an_exit_event_is_not_called(tenant, ada, http_server):
    definition = {**webhook_journey(http_server.url), "exit_events": [{"event": "deleted"}]}
    journey = active_journey(tenant, definition)
    send_event(tenant, ada, "signup")
    send_event(tenant, ada, "deleted")
    tick()
    assert not http_server.requests and journey.runs.get().status == "exited"


# --- Update profile -------------------------------------------------------------------------------

def test_update_profile_sets_and_unsets_attributes_and_a_later_branch_sees_them(tenant, ada, clock_travel):
    definition = {
        "trigger": {"event": "upgraded"},
        "steps": [
            {"id": "tag", "type": "update_profile", "set": {"plan": "{{ data.plan }}", "seats": 5},
             "unset": ["trial"], "next": "is-pro"},
            {"id": "is-pro", "type": "branch", "default": "other", "paths": [
                {"conditions": {"field": "recipient.attributes.plan", "op": "eq", "value": "pro"},
                 "next": "pro"}]},
            {"id": "pro", "type": "send", "template": "plain", "channels": ["sms"], "next": "wait"},
            {"id": "other", "type": "send", "template": "other", "channels": ["sms"]},
            {"id": "wait", "type": "delay", "duration": "1h", "next": "still-pro"},
            {"id": "still-pro", "type": "branch", "default": "other", "paths": [
                {"conditions": {"all": [
                    {"field": "recipient.attributes.plan", "op": "eq", "value": "pro"},
                    {"field": "recipient.attributes.trial", "op": "not_exists"}]}, "next": "pro2"}]},
            {"id": "pro2", "type": "send", "template": "plain", "channels": ["sms"]},
        ],
    }
    journey = active_journey(tenant, definition)
    send_event(tenant, ada, "upgraded", plan="pro")
    ada.refresh_from_db()
    assert ada.attributes == {"plan": "pro", "seats": 5}
    assert list(Message.objects.filter(recipient=ada).values_list("template_key", flat=True)) == ["plain"]
    clock_travel(seconds=3600)
    tick()
    steps = Message.objects.filter(recipient=ada).order_by("id").values_list("journey_step__key", flat=True)
    assert list(steps) == ["pro", "pro2"]
    assert journey.runs.get().status == "completed"


def test_a_liquid_error_at_run_time_fails_the_run_and_says_where(tenant, ada):
    definition = {"trigger": {"event": "upgraded"}, "steps": [
        {"id": "tag", "type": "update_profile", "set": {"n": "{{ data.items | join: 5 }}"}}]}
    journey = active_journey(tenant, definition)
    send_event(tenant, ada, "upgraded", items=list(range(20_000)))
    run = journey.runs.get()
    assert run.status == "failed" and run.end_reason.startswith("steps.tag: ")
    ada.refresh_from_db()
    assert "n" not in ada.attributes


def test_a_digest_keeps_at_most_100_items_but_counts_them_all(tenant, ada):
    active_journey(tenant, DIGEST)
    events_record(tenant=tenant, source=Event.Source.API, drafts=[EventDraft(
        name="comment.created", recipient_id=ada.pk, properties={"thread_id": 7, "n": n})
        for n in range(120)])
    events_process()
    run = JourneyRun.objects.get(recipient=ada)
    batch = json.loads(json.dumps(run.context))["batch"]
    assert (batch["key"], batch["count"], len(batch["items"])) == ("7", 120, 100)
    assert batch["items"][:2] == [{"thread_id": 7, "n": 0}, {"thread_id": 7, "n": 1}]


def test_a_webhook_whose_liquid_fails_takes_the_failure_path_without_a_call(tenant, ada, http_server):
    definition = webhook_journey(http_server.url, on_failure="sorry")
    definition["steps"][0]["body"] = {"items": "{{ data.items | join: ',' }}"}
    journey = active_journey(tenant, definition)
    send_event(tenant, ada, "signup", items=list(range(20_000)))
    tick()
    assert not http_server.requests
    run = journey.runs.get()
    assert run.status == "completed" and run.context["webhooks"]["crm"]["error"].startswith("Liquid: ")
    assert [m.template_key for m in Message.objects.filter(recipient=ada)] == ["other"]


@pytest.mark.django_db(transaction=True)
def test_the_tick_leaves_a_throttled_run_due_while_another_transaction_holds_its_recipient(clock_travel):
    """PostgreSQL: the tick, which holds runs locked, never waits for a recipient lock (a consumer
    takes the recipient first, then its runs): the run stays due and is advanced by a later tick."""
    import threading

    from django.db import connection, transaction

    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    tenant = TenantFactory()
    templates(tenant, "plain")
    definition = {**THROTTLE, "steps": [{"id": "wait", "type": "delay", "duration": "1m", "next": "limit"},
                                        *THROTTLE["steps"]]}
    journey = active_journey(tenant, definition)
    ada = RecipientFactory(tenant=tenant, phone="+14155550101")
    send_event(tenant, ada, "alert")
    clock_travel(seconds=61)
    locked, release = threading.Event(), threading.Event()

    def hold():
        from apps.recipients.models import Recipient

        with transaction.atomic():
            list(Recipient.objects.select_for_update().filter(pk=ada.pk))
            locked.set()
            release.wait(30)
        connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        tick()
        run = journey.runs.get()
        assert run.current_step == "wait" and run.due_at is not None
    finally:
        release.set()
        holder.join(10)
    tick()
    assert journey.runs.get().status == "completed"


def test_a_profile_update_step_moves_the_recipient_into_a_segment_once_committed(
        tenant, ada, django_capture_on_commit_callbacks):
    from apps.segments.models import Segment
    from apps.segments.services import segment_recompute, segment_save

    pro = segment_save(segment=Segment(tenant=tenant, key="pro", name="Pro", conditions={
        "field": "recipient.attributes.plan", "op": "eq", "value": "pro"}))
    assert segment_recompute(pro) == 0
    active_journey(tenant, {"trigger": {"event": "upgraded"}, "steps": [
        {"id": "tag", "type": "update_profile", "set": {"plan": "pro"}}]})
    with django_capture_on_commit_callbacks(execute=True):
        send_event(tenant, ada, "upgraded")
    assert list(pro.memberships.values_list("recipient_id", flat=True)) == [ada.pk]


def test_a_run_reaching_a_webhook_step_publishes_the_call_at_once(tenant, ada, http_server,
                                                                  django_capture_on_commit_callbacks):
    journey = active_journey(tenant, webhook_journey(http_server.url))
    with django_capture_on_commit_callbacks() as callbacks:
        send_event(tenant, ada, "signup", source="ads")
    published = [cb.args[0].name for cb in callbacks if getattr(cb, "args", None)]
    assert "journeys.call_webhooks" in published  # not left for the next tick
    assert journey.runs.get().wait_event == "webhook:crm"
