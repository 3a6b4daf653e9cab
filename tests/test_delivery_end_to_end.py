"""Sends through real protocol peers: an SMTP server, HTTP endpoints for webhooks, and an ESP
simulator (Postmark's API)."""

import base64
import json
import os

import pytest
from rest_framework.test import APIClient
from standardwebhooks import Webhook

from apps.delivery.models import ProviderConfig
from apps.events.tests.factories import api_key_for
from apps.messaging import pipeline
from apps.messaging.models import Message
from apps.tenants.tests.factories import TenantFactory
from tests.fixtures.processes import wait_for
from tests.fixtures.servers import FakeProviderServer, Reply, postmark

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
OLD_SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()


def api_for(tenant) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(tenant)}")
    return client


def webhook_provider(tenant, name, url, position=0, timeout=5):
    config = ProviderConfig(tenant=tenant, name=name, channel="webhook", kind="webhook",
                            position=position, settings={"url": url, "timeout": timeout})
    config.set_credentials({"secrets": [SECRET, OLD_SECRET]})
    config.save()
    return config


def test_an_email_arrives_at_the_smtp_server_with_proper_mime(celery_worker, smtp_server):
    tenant = TenantFactory()
    ProviderConfig.objects.create(
        tenant=tenant, name="SMTP", channel="email", kind="smtp", from_email="hello@acme.example",
        from_name="Acme", settings={"host": smtp_server.hostname, "port": smtp_server.port})
    response = api_for(tenant).post("/api/v1/messages", {
        "recipient": {"external_id": "u1", "email": "ada@example.com"}, "channel": "email",
        "content": {"email": {"subject": "Your receipt", "text": "Thanks!", "html": "<p>Thanks!</p>",
                              "reply_to": "support@acme.example"}}}, format="json")
    message_id = response.json()["messages"][0]["id"]
    wait_for(lambda: smtp_server.messages, timeout=30, message="the email at the SMTP server")
    email = smtp_server.messages[0]
    assert email["Subject"] == "Your receipt"
    assert email["From"] == "Acme <hello@acme.example>" and email["To"] == "ada@example.com"
    assert email["Reply-To"] == "support@acme.example"
    assert email.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in email.iter_parts()] == ["text/plain", "text/html"]
    message = Message.objects.get(pk=message_id)
    assert wait_for(lambda: Message.objects.get(pk=message_id).status == "sent", timeout=10)
    message.refresh_from_db()
    assert email["Message-ID"] == message.provider_message_id == f"<msg-{message_id}@acme.example>"


def test_an_email_arrives_at_postmark_through_its_api(celery_worker, http_server):
    http_server.default = postmark
    tenant = TenantFactory()
    config = ProviderConfig(tenant=tenant, name="Postmark", channel="email", kind="postmark",
                            from_email="hello@acme.example", from_name="Acme",
                            settings={"api_url": http_server.url})
    config.set_credentials({"server_token": "pm-token"})
    config.save()
    response = api_for(tenant).post("/api/v1/messages", {
        "recipient": {"external_id": "u1", "email": "ada@example.com"}, "channel": "email",
        "content": {"email": {"subject": "Your receipt", "text": "Thanks!", "html": "<p>Thanks!</p>"}}},
        format="json")
    message_id = response.json()["messages"][0]["id"]
    wait_for(lambda: http_server.requests, timeout=30, message="the call to Postmark")
    request = http_server.requests[0]
    assert (request.path, request.headers["X-Postmark-Server-Token"]) == ("/email", "pm-token")
    email = request.json()
    assert (email["From"], email["To"], email["Subject"]) == ("Acme <hello@acme.example>", "ada@example.com",
                                                              "Your receipt")
    assert wait_for(lambda: Message.objects.get(pk=message_id).status == "sent", timeout=10)
    message = Message.objects.get(pk=message_id)
    attempt = message.attempt_rows.get()
    assert attempt.request_summary["esp"] == "postmark" and message.provider == "Postmark"
    assert message.provider_message_id == json.loads(attempt.response_excerpt)["MessageID"]


def test_a_webhook_arrives_signed_per_standard_webhooks(celery_worker, http_server):
    tenant = TenantFactory()
    webhook_provider(tenant, "hook", f"{http_server.url}/hooks/signalbox")
    response = api_for(tenant).post("/api/v1/messages", {
        "recipient": "u1", "channel": "webhook",
        "content": {"webhook": {"body": {"type": "order.shipped", "order_id": "A-1"}}}}, format="json")
    message_id = response.json()["messages"][0]["id"]
    wait_for(lambda: http_server.requests, timeout=30, message="the webhook")
    request = http_server.requests[0]
    headers = {k.lower(): v for k, v in request.headers.items()}
    assert headers["webhook-id"] == f"msg-{message_id}"
    assert len(headers["webhook-signature"].split(" ")) == 2  # current and previous secret
    for secret in (SECRET, OLD_SECRET):  # either side of a rotation verifies
        assert Webhook(secret).verify(request.body, headers) == {"type": "order.shipped", "order_id": "A-1"}


def test_a_503_fails_over_to_the_next_provider_with_both_attempts_recorded():
    tenant = TenantFactory()
    primary, secondary = FakeProviderServer(), FakeProviderServer()
    for server in (primary, secondary):
        server.start()
    try:
        primary.default = Reply(503, body={"error": "overloaded"})
        webhook_provider(tenant, "primary", primary.url)
        webhook_provider(tenant, "secondary", secondary.url, position=1)
        message = _webhook_message(tenant)
        assert pipeline.message_send(message_id=message.pk).status == "sent"
        assert [(a.provider, a.outcome, a.response_code) for a in message.attempt_rows.all()] == [
            ("primary", "retryable", 503), ("secondary", "accepted", 200)]
        assert "overloaded" in message.attempt_rows.first().response_excerpt
        assert len(primary.requests) == len(secondary.requests) == 1
    finally:
        primary.stop()
        secondary.stop()


def test_an_ambiguous_timeout_retries_the_same_provider_with_the_same_key(clock_travel):
    tenant = TenantFactory()
    primary, secondary = FakeProviderServer(), FakeProviderServer()
    for server in (primary, secondary):
        server.start()
    try:
        primary.script(Reply(delay=1.5))  # answers too late: it may have processed the call
        webhook_provider(tenant, "primary", primary.url, timeout=0.5)
        webhook_provider(tenant, "secondary", secondary.url, position=1)
        message = _webhook_message(tenant)
        outcome = pipeline.message_send(message_id=message.pk)
        assert outcome.status == "queued" and secondary.requests == []  # no failover
        clock_travel(seconds=outcome.retry_in + 1)
        assert pipeline.message_send(message_id=message.pk).status == "sent"
        ids = [r.headers["webhook-id"] for r in primary.requests]
        assert ids == [f"msg-{message.pk}"] * 2 and secondary.requests == []
    finally:
        primary.stop()
        secondary.stop()


def _webhook_message(tenant) -> Message:
    from apps.messaging.services import message_create
    from apps.recipients.tests.factories import RecipientFactory

    return message_create(message=Message(
        tenant=tenant, recipient=RecipientFactory(tenant=tenant), channels=["webhook"],
        content={"webhook": {"body": {"hello": "world"}}}, dedupe_key=f"t:{os.urandom(4).hex()}"))
