from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from apps.core import clock
from apps.delivery.models import ProviderConfig
from apps.events.tests.factories import api_key_for
from apps.messaging import pipeline
from apps.messaging.models import Message
from apps.tenants import services as tenant_services
from apps.tenants.models import ApiKey

pytestmark = pytest.mark.django_db

EMAIL = {"recipient": {"external_id": "user-1", "email": "ada@example.com"}, "channel": "email",
         "content": {"email": {"subject": "Receipt", "text": "Thanks"}}, "category": "billing"}


@pytest.fixture(autouse=True)
def log_provider(tenant):
    ProviderConfig.objects.create(tenant=tenant, name="log", channel="email", kind="log")


def send(api, body=EMAIL, **headers):
    return api.post("/api/v1/messages", body, format="json", **headers)


def test_send_then_read_the_timeline(api):
    response = send(api)
    assert response.status_code == 202
    [accepted] = response.json()["messages"]
    assert (accepted["recipient"], accepted["status"]) == ("user-1", "queued")
    pipeline.message_send(message_id=accepted["id"])
    body = api.get(f"/api/v1/messages/{accepted['id']}").json()
    assert (body["status"], body["channel"], body["category"], body["provider"]) == (
        "sent", "email", "billing", "log")
    assert [e["status"] for e in body["timeline"]] == ["queued", "sending", "sent"]
    assert body["provider_attempts"][0]["outcome"] == "accepted"


@pytest.mark.parametrize("body,field", [
    ({**EMAIL, "channel": "fax"}, "channel"),
    ({k: v for k, v in EMAIL.items() if k != "channel"}, "channels"),
    ({**EMAIL, "content": {"email": {"text": "no subject"}}}, "content.email.subject"),
    ({**EMAIL, "channels": ["email", "sms"], "channel": None}, "content.sms"),
    ({**EMAIL, "priority": "urgent"}, "priority"),
    ({**EMAIL, "send_at": "tomorrow"}, "send_at"),
    ({**EMAIL, "recipient": None}, "recipient"),
    ({**EMAIL, "template": "welcome"}, "content"),  # one or the other
    ({**EMAIL, "content": None, "template": "no-such-template"}, "template"),
    ({**EMAIL, "content": None, "template": ["welcome"]}, "template"),
    ({**EMAIL, "recipients": ["a"]}, "recipients"),
    ({**EMAIL, "recipient": None, "recipients": []}, "recipients"),
    ({**EMAIL, "recipient": None, "recipients": ["a"] * 1001}, "recipients"),
    ({**EMAIL, "recipient": None, "recipients": ["a", "b", "a"]}, "recipients[2]"),
    ({**EMAIL, "recipient": None, "recipients": ["a", {"external_id": "b", "email": "x"}]},
     "recipients[1].email"),
])
def test_bad_requests_name_the_field_and_create_nothing(api, body, field):
    response = send(api, body)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"], response.json()
    assert not Message.objects.exists()


def test_idempotency_key_makes_a_retry_return_the_same_message(api):
    first = send(api, HTTP_IDEMPOTENCY_KEY="receipt-A-1")
    second = send(api, HTTP_IDEMPOTENCY_KEY="receipt-A-1")
    assert first.json() == second.json() and Message.objects.count() == 1


def test_history_pages_newest_first(api):
    ids = [send(api).json()["messages"][0]["id"] for _ in range(5)]
    page = api.get("/api/v1/messages", {"recipient": "user-1", "limit": 2}).json()
    assert [m["id"] for m in page["results"]] == ids[::-1][:2]
    second = api.get(page["next"]).json()
    assert [m["id"] for m in second["results"]] == ids[::-1][2:4]
    assert api.get("/api/v1/messages", {"recipient": "nobody"}).status_code == 404
    assert api.get("/api/v1/messages").status_code == 400


def test_cancel_while_queued_then_409(api):
    message_id = send(api).json()["messages"][0]["id"]
    response = api.post(f"/api/v1/messages/{message_id}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert pipeline.message_send(message_id=message_id) is None  # never sent
    response = api.post(f"/api/v1/messages/{message_id}/cancel")
    assert response.status_code == 409 and response.json()["error"]["type"] == "conflict"


def test_future_send_at_is_scheduled(api):
    send_at = (clock.now() + timedelta(hours=2)).isoformat()
    body = send(api, {**EMAIL, "send_at": send_at}).json()
    assert body["messages"][0]["status"] == "scheduled"


def test_messages_of_another_tenant_are_404(api, charlie_api):
    message_id = send(api).json()["messages"][0]["id"]
    assert charlie_api.get(f"/api/v1/messages/{message_id}").status_code == 404
    assert charlie_api.post(f"/api/v1/messages/{message_id}/cancel").status_code == 404
    assert charlie_api.get("/api/v1/messages", {"recipient": "user-1"}).status_code == 404


def test_a_test_mode_key_marks_messages_for_the_log_provider(tenant):
    _, token = tenant_services.api_key_create(tenant=tenant, name="t", mode=ApiKey.Mode.TEST)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    message_id = send(client).json()["messages"][0]["id"]
    assert Message.objects.get(pk=message_id).test_mode


def test_a_write_key_cannot_send(tenant):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(tenant, kind=ApiKey.Kind.WRITE)}")
    assert send(client).status_code == 401


def test_one_request_sends_to_many_recipients(api, tenant, django_capture_on_commit_callbacks, settings):
    settings.SIGNALBOX_SEND_BATCH = 2
    body = {**EMAIL, "recipient": None,
            "recipients": ["user-1", {"external_id": "user-2", "email": "grace@example.com"}, "user-3"]}
    with django_capture_on_commit_callbacks() as callbacks:
        response = send(api, body, HTTP_IDEMPOTENCY_KEY="newsletter-1")
    assert response.status_code == 202
    accepted = response.json()["messages"]
    assert [m["recipient"] for m in accepted] == ["user-1", "user-2", "user-3"]
    assert len(callbacks) == 2  # one send task per SIGNALBOX_SEND_BATCH messages
    messages = Message.objects.filter(tenant=tenant).order_by("pk")
    assert [m.dedupe_key for m in messages] == [f"api:newsletter-1:user-{i}" for i in (1, 2, 3)]
    assert messages[1].recipient.email == "grace@example.com"
    outcomes = pipeline.messages_send(message_ids=[m["id"] for m in accepted])
    assert [outcomes[m["id"]].status for m in accepted] == ["failed", "sent", "failed"]  # no address
    retry = send(api, body, HTTP_IDEMPOTENCY_KEY="newsletter-1")
    assert retry.json()["messages"] == accepted


def test_a_send_naming_a_template_renders_the_version_published_when_it_is_sent(api, tenant):
    from apps.content.tests.factories import BrandFactory, TemplateFactory, published

    BrandFactory(tenant=tenant, from_name="Acme", from_email="hello@acme.example")
    ProviderConfig.objects.create(tenant=tenant, name="texts", channel="sms", kind="log")
    template = TemplateFactory(tenant=tenant, key="receipt", category="billing", sms_text="")
    first = published(template)
    body = {"recipient": {"external_id": "user-1", "email": "ada@example.com", "phone": "+14155550101",
                          "attributes": {"first_name": "Ada"}},
            "channels": ["sms", "email"], "template": "receipt", "data": {"total": 12}}
    [accepted] = send(api, body).json()["messages"]
    template.email_subject = "Receipt for {{ recipient.first_name }}"
    template.save()
    second = published(template)  # published after the request, before the send: it is used
    assert pipeline.message_send(message_id=accepted["id"]).status == "sent"
    message = Message.objects.get(pk=accepted["id"])
    assert (message.category, message.template_key, message.template_version_id) == (
        "billing", "receipt", second.pk)
    assert message.channel == "email"  # the template has no SMS text: routed on to email
    assert message.rendered["subject"] == "Receipt for Ada"
    assert "$12.00" in message.rendered["html"] and message.rendered["from_email"] == "hello@acme.example"
    assert "cannot be rendered" in message.timeline.get(status="rerouted").detail["channels"]["sms"]
    assert first.number == 1 and second.number == 2
