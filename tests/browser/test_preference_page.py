"""A recipient follows the preference link of a real email (captured at an SMTP server), mutes a
category on email in a real browser, and the next message goes by SMS with the reason in the
admin's timeline."""

import re

import pytest

from apps.content.demo import demo_content_seed
from apps.delivery.models import ProviderConfig
from apps.messaging.models import Message
from apps.messaging.pipeline import message_send
from apps.messaging.services import message_create
from apps.policy.models import Kind
from apps.policy.tests.factories import CategoryFactory
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.models import Role
from apps.tenants.tests.factories import TenantFactory, staff_member
from tests.browser.test_admin_login import log_in

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def send_welcome(tenant, recipient, n: int) -> Message:
    message = message_create(message=Message(
        tenant=tenant, recipient=recipient, channels=["email", "sms"], category="onboarding",
        template_key="welcome", dedupe_key=f"test:welcome:{n}"))
    message_send(message_id=message.pk)
    message.refresh_from_db()
    return message


def test_mute_a_category_on_email_from_the_emails_link_and_the_next_message_goes_by_sms(
        browser, live_server, smtp_server, settings):
    settings.SIGNALBOX_PUBLIC_URL = live_server.url
    tenant = TenantFactory(name="Acme", slug="acme")
    demo_content_seed(tenant=tenant)
    CategoryFactory(tenant=tenant, key="onboarding", name="Getting started", kind=Kind.PRODUCT)
    CategoryFactory(tenant=tenant, key="security", name="Security", kind=Kind.TRANSACTIONAL, required=True)
    ProviderConfig.objects.create(tenant=tenant, name="SMTP", channel="email", kind="smtp",
                                  from_email="hello@acme.example",
                                  settings={"host": smtp_server.hostname, "port": smtp_server.port})
    ProviderConfig.objects.create(tenant=tenant, name="texts", channel="sms", kind="log")
    recipient = RecipientFactory(tenant=tenant, email="ada@example.com", phone="+14155550101",
                                 attributes={"first_name": "Ada"})
    assert send_welcome(tenant, recipient, 1).channel == "email"
    html = smtp_server.messages[0].get_body(("html",)).get_content()
    link = re.search(r'href="([^"]+/p/[^"]+)"', html).group(1)

    context = browser.new_context(viewport={"width": 375, "height": 740})  # a phone
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(link)
    assert "Acme" in page.title()
    assert page.get_by_label("Security by email").is_disabled()  # required: always sent
    # Fits the phone's width: nothing to scroll sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    page.get_by_label("Getting started by email").uncheck()
    page.get_by_role("button", name="Save").click()
    assert "Saved" in page.get_by_role("status").inner_text()
    context.close()

    second = send_welcome(tenant, recipient, 2)
    assert (second.status, second.channel) == ("sent", "sms")
    assert len(smtp_server.messages) == 1

    staff_member(tenant=tenant, role=Role.SUPPORT, username="support")
    admin = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    log_in(admin, live_server, "support")
    admin.goto(f"{live_server.url}/admin/messaging/message/{second.pk}/change/")
    assert ("rerouted: the recipient muted email for onboarding; sending by sms"
            in admin.locator("#content-main").inner_text())
    admin.context.close()
