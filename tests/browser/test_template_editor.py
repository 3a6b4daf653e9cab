"""A Marketer edits a template in a real browser: sees a syntax error highlighted, fixes it,
previews the email at mobile width and publishes; the next message sent uses the new version."""

import os

import pytest

from apps.content.demo import demo_content_seed
from apps.content.models import Template
from apps.delivery.models import ProviderConfig
from apps.messaging.models import Message
from apps.messaging.pipeline import message_send
from apps.messaging.services import message_create
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.models import Role
from apps.tenants.tests.factories import TenantFactory, staff_member
from tests.browser.test_admin_login import log_in

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = os.environ.get("SIGNALBOX_SCREENSHOTS")  # a folder to keep the screenshots in


def shot(page, tmp_path, name: str) -> None:
    page.screenshot(path=os.path.join(SCREENSHOTS or str(tmp_path), f"{name}.png"), full_page=True)


def test_marketer_fixes_an_error_previews_on_mobile_and_publishes(page, live_server, tmp_path):
    tenant = TenantFactory(name="Acme", slug="acme")
    demo_content_seed(tenant=tenant)
    staff_member(tenant=tenant, role=Role.MARKETER, username="marketer")
    template = Template.objects.get(key="welcome")
    log_in(page, live_server, "marketer")

    page.goto(f"{live_server.url}/admin/content/template/{template.pk}/change/")
    page.fill("#id_sms_text", "Hi {{ recipient.first_name | }}!\nReply STOP to opt out.")
    page.click("input[name=_continue]")
    error = page.locator(".field-sms_text .errorlist")
    assert "Line 1, column 4: expected word, found end of expression" in error.inner_text()
    field = page.locator("#id_sms_text")
    assert "sb-error-field" in field.get_attribute("class")  # highlighted,
    assert page.evaluate("document.activeElement.id") == "id_sms_text"  # with the cursor on the error
    assert page.evaluate("document.activeElement.selectionStart") == 3
    shot(page, tmp_path, "1-syntax-error")

    page.fill("#id_sms_text", "Hi {{ recipient.first_name | default: 'there' }}! Reply STOP to opt out.")
    page.click("input[name=_preview]")
    page.wait_for_selector("#email-frame")
    assert "Hi Ada! Reply STOP to opt out." in page.locator("#preview-sms").inner_text()
    frame = page.frame_locator("#email-frame")
    assert "Thanks for joining Acme" in frame.locator("body").inner_text()
    page.click("#width-mobile")
    assert page.locator("#email-frame").evaluate("frame => frame.clientWidth") == 375
    # MJML's responsive layout fits the narrow frame: nothing to scroll sideways.
    assert frame.locator("html").evaluate("html => html.scrollWidth") <= 375
    shot(page, tmp_path, "2-preview-mobile")

    page.click("text=Publish…")
    changes = page.locator("#content-main").inner_text()
    assert "Changes since version 1" in changes and "sms.text" in changes
    assert "email.body" not in changes  # the browser's CRLF line ends are no change
    page.fill("#id_comment", "Friendlier SMS")
    shot(page, tmp_path, "3-publish")
    page.click("#publish-form input[type=submit]")
    page.wait_for_selector("#versions")
    assert "Published version 2." in page.locator(".messagelist").inner_text()
    assert "live" in page.locator("#version-2").inner_text()
    shot(page, tmp_path, "4-versions")
    template.refresh_from_db()
    assert template.published_version.number == 2
    assert template.published_version.created_by.username == "marketer"

    # The next message sent uses the new version.
    ProviderConfig.objects.create(tenant=tenant, name="texts", channel="sms", kind="log")
    recipient = RecipientFactory(tenant=tenant, phone="+14155550101", attributes={"first_name": "Ada"})
    message = message_create(message=Message(tenant=tenant, recipient=recipient, channels=["sms"],
                                             template_key="welcome", dedupe_key="test:welcome"))
    assert message_send(message_id=message.pk).status == "sent"
    message.refresh_from_db()
    assert message.template_version.number == 2
    assert message.rendered["text"] == "Hi Ada! Reply STOP to opt out."
