"""Journeys with real processes: a Celery worker processing events and sending, the tick called
directly with the moved clock, a tick process killed while advancing due runs, and a digest
collecting comments posted through the API."""

import os
import signal
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from rest_framework.test import APIClient

from apps.content.tests.factories import TemplateFactory, published
from apps.core import clock
from apps.core.services import tick
from apps.delivery.models import ProviderConfig
from apps.events.tests.factories import api_key_for
from apps.journeys.demo import COMMENT_DIGEST
from apps.journeys.models import JourneyRun, JourneyRunStep
from apps.journeys.tests.factories import ABANDONED_CART, active_journey, templates
from apps.messaging import pipeline
from apps.messaging.models import Attempt, Message
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.tests.factories import TenantFactory
from tests.fixtures.processes import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parent.parent


def run_tick():
    with transaction.atomic():  # so that the sends it creates are enqueued on commit
        tick()


def test_abandoned_cart_end_to_end(celery_worker, clock_travel):
    tenant = TenantFactory()
    templates(tenant, "cart-reminder", "cart-mail")
    for channel in ("sms", "email"):
        ProviderConfig.objects.create(tenant=tenant, name=f"log-{channel}", channel=channel, kind="log")
    active_journey(tenant, ABANDONED_CART)
    ada = RecipientFactory(tenant=tenant, external_id="ada", phone="+14155550101",
                           timezone="America/New_York")
    bob = RecipientFactory(tenant=tenant, external_id="bob", phone="+14155550102")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(tenant)}")
    for who in ("ada", "bob"):
        response = api.post("/api/v1/events", {"name": "cart.abandoned", "recipient": who,
                                               "properties": {"cart_id": f"{who}-1"}}, format="json")
        assert response.status_code == 202
    wait_for(lambda: JourneyRun.objects.filter(tenant=tenant).count() == 2, timeout=30,
             message="the worker to start both runs")

    clock_travel(seconds=45 * 60)
    run_tick()
    wait_for(lambda: Message.objects.filter(tenant=tenant, status="sent").count() == 2, timeout=30,
             message="both reminders to be sent by the worker")
    assert set(Message.objects.filter(tenant=tenant).values_list("channel", "template_key")) == {
        ("sms", "cart-reminder")}

    # Bob completes his order while waiting for the morning: his run ends at once.
    assert api.post("/api/v1/events", {"name": "order.completed", "recipient": "bob"},
                    format="json").status_code == 202
    wait_for(lambda: JourneyRun.objects.get(recipient=bob).status == "exited", timeout=30,
             message="the exit event to end Bob's run")
    assert JourneyRun.objects.get(recipient=bob).due_at is None

    ada_run = JourneyRun.objects.get(recipient=ada)
    assert ada_run.due_at.astimezone(ZoneInfo("America/New_York")).hour == 9
    clock_travel(seconds=(ada_run.due_at - clock.now()).total_seconds() + 1)
    run_tick()
    wait_for(lambda: Message.objects.filter(recipient=ada, channel="email", status="sent").exists(),
             timeout=30, message="Ada's morning email")
    run_tick()
    assert Message.objects.filter(recipient=ada).count() == 2
    assert Message.objects.filter(recipient=bob).count() == 1
    assert JourneyRun.objects.get(recipient=ada).status == "completed"


def test_comment_digest_end_to_end(celery_worker, clock_travel):
    """Comments posted at once reach the worker's consumer together or in parallel transactions:
    the recipient lock makes each later comment join the open digest of its thread."""
    tenant = TenantFactory()
    published(TemplateFactory(
        tenant=tenant, key="comment-digest", email_subject="{{ data.batch.count }} new comments",
        email_body="{% for item in data.batch.items %}"
                   "<mj-text>{{ item.author }} said {{ item.text }}</mj-text>{% endfor %}"))
    ProviderConfig.objects.create(tenant=tenant, name="log-email", channel="email", kind="log")
    journey = active_journey(tenant, {**COMMENT_DIGEST, "steps": [
        COMMENT_DIGEST["steps"][0], {**COMMENT_DIGEST["steps"][1], "template": "comment-digest"}]})
    ada = RecipientFactory(tenant=tenant, external_id="ada", email="ada@example.com")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(tenant)}")
    comments = [("t1", f"user{n}", f"comment {n}") for n in range(5)] + [("t2", "zoe", "elsewhere")]
    for thread, author, text in comments:
        response = api.post("/api/v1/events", {"name": "comment.created", "recipient": "ada", "properties": {
            "thread_id": thread, "author": author, "text": text}}, format="json")
        assert response.status_code == 202

    def collected() -> dict:
        return {r.context["batch"]["key"]: r.context["batch"]["count"]
                for r in journey.runs.all() if "batch" in r.context}

    wait_for(lambda: sum(collected().values()) == 6, timeout=30, message="the worker to collect 6 comments")
    assert collected() == {"t1": 5, "t2": 1} and journey.runs.count() == 2
    run_tick()
    assert not Message.objects.filter(recipient=ada).exists()

    clock_travel(seconds=10 * 60 + 1)
    run_tick()
    wait_for(lambda: Message.objects.filter(recipient=ada, status="sent").count() == 2, timeout=30,
             message="both digests to be sent by the worker")
    by_subject = {m.rendered["subject"]: m.rendered["text"] for m in Message.objects.filter(recipient=ada)}
    assert set(by_subject) == {"5 new comments", "1 new comments"}
    assert all(f"user{n} said comment {n}" in by_subject["5 new comments"] for n in range(5))
    assert "zoe said elsewhere" in by_subject["1 new comments"] and "user" not in by_subject["1 new comments"]
    assert set(journey.runs.values_list("status", flat=True)) == {"completed"}


def test_a_throttle_holds_under_the_workers_parallel_consumers(celery_worker):
    tenant = TenantFactory()
    templates(tenant, "alert")
    journey = active_journey(tenant, {"trigger": {"event": "alert"}, "reentry": {"rule": "every_time"},
                                      "steps": [
        {"id": "limit", "type": "throttle", "limit": 3, "window": "1h", "next": "sms"},
        {"id": "sms", "type": "send", "template": "alert", "channels": ["sms"]}]})
    RecipientFactory(tenant=tenant, external_id="ada", phone="+14155550101")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(tenant)}")
    for _ in range(10):
        response = api.post("/api/v1/events", {"name": "alert", "recipient": "ada"}, format="json")
        assert response.status_code == 202
    wait_for(lambda: journey.runs.exclude(status="active").count() == 10, timeout=30,
             message="the worker to run the 10 alerts")
    assert sorted(journey.runs.values_list("status", flat=True)) == ["completed"] * 3 + ["exited"] * 7
    assert Message.objects.filter(tenant=tenant).count() == 3


RUNS = 300


def test_a_tick_killed_while_advancing_due_runs_advances_each_exactly_once(tmp_path, clock_travel):
    tenant = TenantFactory()
    templates(tenant, "cart-reminder", "cart-mail")
    ProviderConfig.objects.create(tenant=tenant, name="log-sms", channel="sms", kind="log")
    journey = active_journey(tenant, ABANDONED_CART)
    from apps.events.models import Event
    from apps.events.services import EventDraft, events_process, events_record

    people = [RecipientFactory(tenant=tenant, phone=f"+1415555{n:04d}") for n in range(RUNS)]
    events_record(tenant=tenant, source=Event.Source.API, drafts=[
        EventDraft(name="cart.abandoned", recipient_id=p.pk) for p in people])
    while events_process():
        pass
    assert journey.runs.count() == RUNS
    clock_travel(seconds=46 * 60)

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "SIGNALBOX_JOURNEY_DUE_BATCH": "5",
           "SIGNALBOX_WORKER_DB_NAME": connection.settings_dict["NAME"]}
    code = "import django; django.setup(); from apps.core.services import tick; tick()"
    log = (tmp_path / "tick.log").open("wb")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=log, stderr=log)

    def advanced() -> int:
        return journey.runs.exclude(current_step="later").count()

    wait_for(lambda: advanced() > 0 or process.poll() is not None, timeout=60, message="the first batches")
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    at_kill = advanced()
    assert 0 < at_kill < RUNS, (at_kill, (tmp_path / "tick.log").read_text())

    run_tick()  # the restart: whatever the killed process had not committed is done now, once
    assert advanced() == RUNS
    keys = list(Message.objects.filter(tenant=tenant).values_list("dedupe_key", flat=True))
    assert len(keys) == RUNS == len(set(keys))
    assert set(keys) == {f"run:{run_id}:sms" for run_id in journey.runs.values_list("id", flat=True)}
    # Each run left its delay once and entered the send once.
    visits = JourneyRunStep.objects.filter(run__journey=journey)
    assert visits.filter(step__key="later", outcome="passed").count() == RUNS
    assert visits.filter(step__key="sms").count() == RUNS
    assert journey.runs.filter(current_step="morning", due_at__gt=clock.now()).count() == RUNS

    # Sent once each: here, or by the session's worker if one runs (it got the tasks). Waiting for
    # them also keeps its transactions away from the teardown's flush.
    pipeline.messages_send(message_ids=list(
        Message.objects.filter(tenant=tenant).values_list("pk", flat=True)))
    wait_for(lambda: not Message.objects.filter(tenant=tenant, status__in=["queued", "sending"]).exists(),
             timeout=60, message="every reminder to be sent")
    assert Message.objects.filter(tenant=tenant, status="sent").count() == RUNS
    assert Attempt.objects.filter(message__tenant=tenant, outcome="accepted").count() == RUNS


def test_a_webhook_step_is_called_by_the_worker_without_waiting_for_a_tick(celery_worker, http_server):
    from apps.journeys.tests.test_steps import webhook_journey
    from tests.fixtures.servers import Reply

    tenant = TenantFactory()
    templates(tenant, "plain", "other")
    published(TemplateFactory(tenant=tenant, key="plan-sms",
                              sms_text="Your plan: {{ data.webhooks.crm.body.plan }}"))
    ProviderConfig.objects.create(tenant=tenant, name="log-sms", channel="sms", kind="log")
    http_server.script(Reply(200, {"plan": "gold"}))
    journey = active_journey(tenant, webhook_journey(http_server.url))
    RecipientFactory(tenant=tenant, external_id="ada", phone="+14155550101")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(tenant)}")
    assert api.post("/api/v1/events", {"name": "signup", "recipient": "ada", "properties": {"source": "ads"}},
                    format="json").status_code == 202
    # No tick here: the worker's consumer parks the run and publishes the call after its commit.
    wait_for(lambda: Message.objects.filter(status="sent").exists(), timeout=30,
             message="the webhook's answer to reach the SMS")
    assert len(http_server.requests) == 1
    assert Message.objects.get().rendered["text"] == "Your plan: gold"
    assert journey.runs.get().status == "completed"
