"""A send's own `content` may use Liquid, with the context a template gets."""

import uuid

import pytest

from apps.messaging import pipeline, services
from apps.messaging.models import Message
from apps.policy.models import Kind
from apps.policy.tests.factories import CategoryFactory
from apps.recipients.tests.factories import RecipientFactory

pytestmark = pytest.mark.django_db


def sent(tenant, content, *, channels=("email",), category="", data=None, **profile):
    recipient = RecipientFactory(tenant=tenant, email="ada@example.com", phone="+14155550101", **profile)
    message = services.message_create(message=Message(
        tenant=tenant, recipient=recipient, channels=list(channels), content=content, category=category,
        data=data or {}, dedupe_key=f"test:{uuid.uuid4()}", test_mode=True))  # the log provider
    pipeline.message_send(message_id=message.pk)
    message.refresh_from_db()
    return message


def test_inline_liquid_sees_the_recipient_the_data_and_the_preference_links(tenant, settings):
    settings.SIGNALBOX_PUBLIC_URL = "https://prefs.example"
    CategoryFactory(tenant=tenant, key="marketing", name="Offers", kind=Kind.COMMERCIAL)
    message = sent(tenant, {"email": {
        "subject": "Hi {{ recipient.first_name }},\n{{ data.count }} new",
        "text": "Total {{ data.total | money: '€' }}. Settings: {{ message.preferences_url }}",
        "html": "<p>{{ data.note }}</p><a href=\"{{ message.unsubscribe_url }}\">Unsubscribe</a>",
    }}, category="marketing", data={"count": 3, "total": 1234.5, "note": "<b>bold</b>"},
        attributes={"first_name": "Ada"})
    assert message.status == "sent", message.timeline.last().reason
    rendered = message.rendered
    assert rendered["subject"] == "Hi Ada, 3 new"  # one line: it is a header
    assert rendered["text"].startswith("Total €1,234.50. Settings: https://prefs.example/p/")
    assert rendered["html"].startswith("<p>&lt;b&gt;bold&lt;/b&gt;</p><a href=\"https://prefs.example/u/")


def test_content_without_liquid_is_sent_as_given(tenant):
    content = {"email": {"subject": "Price {$1}", "text": "Use {braces} freely: { {x} }"}}
    assert sent(tenant, content).rendered == {"to": "ada@example.com", **content["email"]}


def test_text_channels_are_not_escaped(tenant):
    message = sent(tenant, {"sms": {"text": "Code {{ data.code }}"}}, channels=("sms",),
                   data={"code": "42\"x"})
    assert message.rendered["text"] == 'Code 42"x'


def test_a_failing_render_moves_on_to_the_next_channel_with_the_field_named(tenant):
    message = sent(tenant, {"email": {"subject": "{{ data.items | join: 1, 2 }}", "text": "x"},
                            "sms": {"text": "Fallback"}}, channels=("email", "sms"))
    assert (message.status, message.channel) == ("sent", "sms")
    reasons = " ".join(event.reason for event in message.timeline.all())
    assert "content.email.subject" in reasons


def test_the_api_refuses_broken_liquid_naming_the_field(api):
    response = api.post("/api/v1/messages", {
        "recipient": {"external_id": "u1", "email": "ada@example.com"}, "channel": "email",
        "content": {"email": {"subject": "Hi {{ recipient.name", "text": "ok {% if %}"}}}, format="json")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert set(fields) == {"content.email.subject", "content.email.text"}
    assert not Message.objects.exists()
