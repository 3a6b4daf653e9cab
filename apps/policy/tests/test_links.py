"""Signed preference links, the hosted page, RFC 8058 one-click unsubscribe."""

import uuid
from datetime import UTC, datetime

import pytest
from django.test import Client

from apps.core import clock
from apps.delivery.models import ProviderConfig
from apps.messaging import pipeline, services
from apps.messaging.models import Message
from apps.policy.links import link_token
from apps.policy.models import Kind, Preference
from apps.policy.tests.factories import CategoryFactory
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def recipient():
    tenant = TenantFactory(name="Acme")
    CategoryFactory(tenant=tenant, key="billing", name="Billing", kind=Kind.TRANSACTIONAL)
    CategoryFactory(tenant=tenant, key="security", name="Security", kind=Kind.TRANSACTIONAL, required=True)
    CategoryFactory(tenant=tenant, key="marketing", name="Offers", kind=Kind.COMMERCIAL)
    return RecipientFactory(tenant=tenant, email="ada@example.com", phone="+14155550101")


def send(recipient, category, channels=("email",)):
    content = {"email": {"subject": "Hi", "text": "Hello"}, "sms": {"text": "Hi"}}
    message = services.message_create(message=Message(
        tenant=recipient.tenant, recipient=recipient, channels=list(channels), category=category,
        content={c: content[c] for c in channels}, dedupe_key=f"test:{uuid.uuid4()}"))
    pipeline.message_send(message_id=message.pk)
    message.refresh_from_db()
    return message


@pytest.mark.integration
def test_commercial_email_carries_one_click_unsubscribe_and_a_post_to_it_unsubscribes(
        recipient, smtp_server, settings):
    settings.SIGNALBOX_PUBLIC_URL = "https://prefs.example"
    ProviderConfig.objects.create(tenant=recipient.tenant, name="SMTP", channel="email", kind="smtp",
                                  from_email="hello@acme.example",
                                  settings={"host": smtp_server.hostname, "port": smtp_server.port})
    assert send(recipient, "billing").status == "sent"
    assert send(recipient, "marketing").status == "sent"
    transactional, commercial = smtp_server.messages
    assert transactional["List-Unsubscribe"] is None and transactional["List-Unsubscribe-Post"] is None
    assert commercial["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = str(commercial["List-Unsubscribe"]).strip()  # long: folded onto a second line
    assert url.startswith("<https://prefs.example/u/") and url.endswith(">")

    # RFC 8058: the mail client POSTs with no session, no CSRF token and no confirmation.
    response = Client(enforce_csrf_checks=True).post(url[len("<https://prefs.example"):-1],
                                                     {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert Preference.objects.get(recipient=recipient).commercial_unsubscribed_at is not None
    suppressed = send(recipient, "marketing")
    assert suppressed.status == "suppressed"
    assert "unsubscribed from commercial messages" in suppressed.timeline.last().reason
    assert send(recipient, "billing").status == "sent"  # transactional still goes


def test_a_get_to_the_unsubscribe_link_only_asks_for_confirmation(recipient, client):
    response = client.get(f"/u/{link_token(recipient=recipient)}")
    assert response.status_code == 200
    assert b"Unsubscribe from marketing messages?" in response.content
    assert not Preference.objects.exists()


@pytest.mark.parametrize("path", ["/p/{}", "/u/{}"])
def test_a_tampered_or_expired_link_is_a_clear_400_page(recipient, client, settings, path):
    token = link_token(recipient=recipient)
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    response = client.get(path.format(tampered))
    assert response.status_code == 400 and b"This link is not valid" in response.content
    assert client.post(path.format("garbage")).status_code == 400
    settings.SIGNALBOX_PREFERENCE_LINK_MAX_AGE_DAYS = 0
    response = client.get(path.format(token))
    assert response.status_code == 400 and b"This link has expired" in response.content
    assert not Preference.objects.exists()


def test_a_link_for_one_tenants_recipient_never_reaches_anothers(recipient, client):
    other = RecipientFactory(tenant=TenantFactory())
    token = link_token(recipient=other)
    assert client.get(f"/p/{token}").status_code == 200
    body = client.get(f"/p/{link_token(recipient=recipient)}").content.decode()
    assert "Offers" in body and "Acme" in body
    assert "Offers" not in client.get(f"/p/{token}").content.decode()


def test_the_preference_page_saves_choices_for_the_next_message(recipient, client, clock_travel):
    path = f"/p/{link_token(recipient=recipient)}"
    page = client.get(path).content.decode()
    assert 'name="viewport"' in page and 'aria-label="Offers by Email"' in page
    assert '<th scope="col">SMS</th>' in page and 'aria-label="Offers by SMS"' in page
    form = {"marketing:sms": "on", "billing:email": "on", "quiet_start": "22:00", "quiet_end": "07:00"}
    response = client.post(path, form)
    assert response.status_code == 200 and b"Saved" in response.content
    stored = Preference.objects.get(recipient=recipient)
    assert stored.channels["marketing"]["email"] is False and stored.channels["marketing"]["sms"] is True
    assert "security" not in stored.channels  # required: not offered, never muted
    assert f"{stored.quiet_start:%H:%M}-{stored.quiet_end:%H:%M}" == "22:00-07:00"
    clock_travel(seconds=(datetime(2030, 6, 3, 10, tzinfo=UTC) - clock.now()).total_seconds())  # noon, Berlin
    ProviderConfig.objects.create(tenant=recipient.tenant, name="texts", channel="sms", kind="log")
    ProviderConfig.objects.create(tenant=recipient.tenant, name="mail", channel="email", kind="log")
    assert send(recipient, "marketing", channels=("email", "sms")).channel == "sms"


def test_bad_quiet_hours_on_the_page_are_reported_not_saved(recipient, client):
    path = f"/p/{link_token(recipient=recipient)}"
    response = client.post(path, {"quiet_start": "22:00"})
    assert response.status_code == 400 and b"HH:MM" in response.content
    assert not Preference.objects.exists()
