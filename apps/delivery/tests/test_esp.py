"""ESP providers (anymail) against local SendGrid/Postmark simulators: payloads, failover,
retries and the HTTP client's guards."""

import json
import os

import pytest

from apps.delivery.models import ProviderConfig
from apps.delivery.providers.base import ProviderError, Rendered
from apps.delivery.providers.registry import provider_for
from apps.messaging import pipeline
from apps.messaging.models import Message
from apps.messaging.services import message_create
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.tests.factories import TenantFactory
from tests.fixtures.servers import FakeProviderServer, Reply, postmark, sendgrid

pytestmark = pytest.mark.django_db

CREDENTIALS = {"sendgrid": {"api_key": "SG.test-key"}, "postmark": {"server_token": "pm-test-token"},
               "anymail": {"api_key": "re_test_key"}}
EMAIL = Rendered(
    channel="email", to="ada@example.com",
    content={"subject": "Your receipt", "text": "Thanks!", "html": "<p>Thanks!</p>",
             "reply_to": "support@acme.example"},
    headers={"List-Unsubscribe": "<https://acme.example/u/1>",
             "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
)


@pytest.fixture
def servers():
    """servers(emulator, …) → started FakeProviderServers, stopped after the test."""
    started = []

    def start(*defaults):
        for default in defaults:
            started.append(FakeProviderServer(default))
            started[-1].start()
        return started[-len(defaults):] if len(defaults) > 1 else started[-1]

    yield start
    for server in started:
        server.stop()


def esp_config(tenant, kind, server_url, *, name=None, position=0, **settings):
    api_url = f"{server_url}/v3/" if kind == "sendgrid" else server_url
    config = ProviderConfig(tenant=tenant, name=name or kind, channel="email", kind=kind,
                            position=position, from_email="hello@acme.example", from_name="Acme",
                            settings={"api_url": api_url, **settings})
    config.set_credentials(CREDENTIALS[kind])
    config.save()
    return config


def email_message(tenant) -> Message:
    return message_create(message=Message(
        tenant=tenant, recipient=RecipientFactory(tenant=tenant, email="ada@example.com"),
        channels=["email"], content={"email": dict(EMAIL.content)},
        dedupe_key=f"t:{os.urandom(4).hex()}"))


def attempts(message):
    return [(a.provider, a.outcome, a.response_code) for a in message.attempt_rows.all()]


def test_sendgrid_gets_the_full_email(servers):
    server = servers(sendgrid)
    config = esp_config(TenantFactory(), "sendgrid", server.url)
    result = provider_for(config).send(EMAIL, idempotency_key="msg-7")
    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/v3/mail/send")
    assert request.headers["Authorization"] == "Bearer SG.test-key"
    payload = request.json()
    assert payload["from"] == {"email": "hello@acme.example", "name": "Acme"}
    assert payload["reply_to_list"] == [{"email": "support@acme.example"}]
    assert payload["personalizations"][0]["to"] == [{"email": "ada@example.com"}]
    assert payload["subject"] == "Your receipt"
    assert payload["content"] == [{"type": "text/plain", "value": "Thanks!"},
                                  {"type": "text/html", "value": "<p>Thanks!</p>"}]
    assert payload["headers"] == {"Message-ID": "<msg-7@acme.example>", **EMAIL.headers}
    # anymail's id for the message, the one SendGrid's events carry back.
    assert result.provider_message_id == payload["personalizations"][0]["custom_args"]["anymail_id"]
    assert result.response_code == 202
    assert result.request_summary == {"to": "ada@example.com", "subject": "Your receipt", "esp": "sendgrid"}


def test_postmark_gets_the_full_email(servers):
    server = servers(postmark)
    config = esp_config(TenantFactory(), "postmark", server.url, message_stream="outbound")
    result = provider_for(config).send(EMAIL, idempotency_key="msg-7")
    [request] = server.requests
    assert (request.method, request.path) == ("POST", "/email")
    assert request.headers["X-Postmark-Server-Token"] == "pm-test-token"
    payload = request.json()
    assert (payload["From"], payload["To"], payload["ReplyTo"], payload["Subject"]) == (
        "Acme <hello@acme.example>", "ada@example.com", "support@acme.example", "Your receipt")
    assert (payload["TextBody"], payload["HtmlBody"]) == ("Thanks!", "<p>Thanks!</p>")
    assert payload["MessageStream"] == "outbound"
    assert {h["Name"]: h["Value"] for h in payload["Headers"]} == {
        "Message-ID": "<msg-7@acme.example>", **EMAIL.headers}
    assert result.provider_message_id == json.loads(result.response_excerpt)["MessageID"]
    assert result.response_code == 200


def test_any_other_anymail_esp_with_its_idempotency_key(servers):
    server = servers(Reply(200, {"id": "re-123"}))
    config = esp_config(TenantFactory(), "anymail", server.url, esp="resend")
    result = provider_for(config).send(EMAIL, idempotency_key="msg-7")
    [request] = server.requests
    assert (request.path, request.headers["Authorization"]) == ("/emails", "Bearer re_test_key")
    assert request.headers["Idempotency-Key"] == "msg-7"
    assert request.json()["from"] == "Acme <hello@acme.example>"
    assert result.provider_message_id == "re-123"


@pytest.mark.parametrize("failure", ["503", "refused", "tls"])
def test_a_failure_before_acceptance_fails_over_with_both_attempts_recorded(servers, failure):
    primary, secondary = servers(sendgrid, postmark)
    tenant = TenantFactory()
    primary_url = primary.url
    if failure == "503":
        primary.script(Reply(503, {"errors": [{"message": "overloaded"}]}))
    elif failure == "refused":
        primary.stop()
    else:  # an https URL to a plain HTTP server: the TLS handshake fails
        primary_url = primary.url.replace("http://", "https://")
    esp_config(tenant, "sendgrid", primary_url, name="primary")
    esp_config(tenant, "postmark", secondary.url, name="secondary", position=1)
    message = email_message(tenant)
    assert pipeline.message_send(message_id=message.pk).status == "sent"
    code = 503 if failure == "503" else None
    assert attempts(message) == [("primary", "retryable", code), ("secondary", "accepted", 200)]
    message.refresh_from_db()
    assert message.provider == "secondary"
    accepted = message.attempt_rows.get(outcome="accepted")
    assert message.provider_message_id == json.loads(accepted.response_excerpt)["MessageID"]
    if failure == "503":
        assert "overloaded" in message.attempt_rows.first().response_excerpt


def test_a_429_is_retried_after_its_retry_after(servers):
    server = servers(postmark)
    server.script(Reply(429, {"ErrorCode": 429, "Message": "Rate limit exceeded"},
                        headers={"Retry-After": "120"}))
    tenant = TenantFactory()
    esp_config(tenant, "postmark", server.url)
    message = email_message(tenant)
    outcome = pipeline.message_send(message_id=message.pk)
    assert outcome.status == "queued" and outcome.retry_in >= 120
    assert attempts(message) == [("postmark", "retryable", 429)]


@pytest.mark.parametrize("kind, emulator, code", [("sendgrid", sendgrid, 400), ("postmark", postmark, 422)])
def test_an_address_the_esp_refuses_is_a_permanent_error(servers, kind, emulator, code):
    server = servers(emulator)
    config = esp_config(TenantFactory(), kind, server.url)
    with pytest.raises(ProviderError) as refused:
        provider_for(config).send(Rendered(channel="email", to="ada@example.invalid",
                                           content={"subject": "Hi", "text": "Hello"}), idempotency_key="m1")
    error = refused.value
    assert (error.permanent, error.ambiguous, error.response_code) == (True, False, code)
    assert "address" in error.response_excerpt and len(server.requests) == 1


def test_an_unparseable_address_is_permanent_and_nothing_is_sent(servers):
    server = servers(postmark)
    config = esp_config(TenantFactory(), "postmark", server.url)
    with pytest.raises(ProviderError) as refused:
        provider_for(config).send(Rendered(channel="email", to="not an address",
                                           content={"subject": "Hi", "text": "Hello"}), idempotency_key="m1")
    assert refused.value.permanent and server.requests == []


def test_a_read_timeout_is_ambiguous_and_the_same_provider_is_retried(servers, clock_travel):
    primary, secondary = servers(postmark, postmark)
    primary.script(Reply(delay=1.5))  # answers too late: Postmark may have sent it
    tenant = TenantFactory()
    esp_config(tenant, "postmark", primary.url, name="primary", timeout=0.5)
    esp_config(tenant, "postmark", secondary.url, name="secondary", position=1)
    message = email_message(tenant)
    outcome = pipeline.message_send(message_id=message.pk)
    assert outcome.status == "queued" and secondary.requests == []  # no failover
    clock_travel(seconds=outcome.retry_in + 1)
    assert pipeline.message_send(message_id=message.pk).status == "sent"
    assert attempts(message) == [("primary", "ambiguous", None), ("primary", "accepted", 200)]
    headers = [{h["Name"]: h["Value"] for h in r.json()["Headers"]} for r in primary.requests]
    message_ids = [h["Message-ID"] for h in headers]
    assert message_ids == [f"<msg-{message.pk}@acme.example>"] * 2 and secondary.requests == []


def test_an_accepted_call_with_an_unreadable_answer_is_ambiguous(servers):
    server = servers(Reply(200, b"<html>proxy error</html>"))
    config = esp_config(TenantFactory(), "postmark", server.url)
    with pytest.raises(ProviderError) as unreadable:
        provider_for(config).send(EMAIL, idempotency_key="m1")
    assert unreadable.value.ambiguous and unreadable.value.response_code == 200


def test_an_api_url_to_a_private_address_is_refused_and_nothing_is_sent(servers, settings):
    server = servers(sendgrid)
    config = esp_config(TenantFactory(), "sendgrid", server.url)
    settings.SIGNALBOX_HTTP_ALLOW_PRIVATE = []
    with pytest.raises(ProviderError) as blocked:
        provider_for(config).send(EMAIL, idempotency_key="m1")
    assert "private or reserved" in str(blocked.value) and not blocked.value.ambiguous
    with pytest.raises(ProviderError):
        provider_for(config).test_connection()
    assert server.requests == []


def test_a_redirect_is_not_followed(servers):
    server, elsewhere = servers(sendgrid, sendgrid)
    server.script(Reply(307, headers={"Location": f"{elsewhere.url}/v3/mail/send"}))
    config = esp_config(TenantFactory(), "sendgrid", server.url)
    with pytest.raises(ProviderError) as redirected:
        provider_for(config).send(EMAIL, idempotency_key="m1")
    assert redirected.value.response_code == 307 and redirected.value.permanent
    assert len(server.requests) == 1 and elsewhere.requests == []


def test_test_connection_makes_an_authenticated_call_that_sends_nothing(servers):
    sendgrid_server, postmark_server = servers(sendgrid, postmark)
    tenant = TenantFactory()
    detail = provider_for(esp_config(tenant, "sendgrid", sendgrid_server.url)).test_connection()
    assert detail == "sendgrid: credentials accepted by 127.0.0.1"
    assert [(r.method, r.path, r.headers["Authorization"]) for r in sendgrid_server.requests] == [
        ("GET", "/v3/scopes", "Bearer SG.test-key")]
    postmark_config = esp_config(tenant, "postmark", postmark_server.url)
    assert provider_for(postmark_config).test_connection() == "postmark: credentials accepted by 127.0.0.1"
    assert postmark_server.requests[0].headers["X-Postmark-Server-Token"] == "pm-test-token"
    postmark_server.script(Reply(401, {"ErrorCode": 10, "Message": "Bad token"}))
    with pytest.raises(ProviderError, match="refused the credentials"):
        provider_for(postmark_config).test_connection()
    resend = esp_config(tenant, "anymail", postmark_server.url, esp="resend")
    assert "configured" in provider_for(resend).test_connection() and len(postmark_server.requests) == 2
