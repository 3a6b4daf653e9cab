"""A Marketer starts a broadcast to a segment in the admin of a real browser and watches its
progress bar reach 100 % while a real worker sends (300 members, made with the ORM; the whole
scenario, building the segment in the admin first, is in test_segment_builder.py)."""

import os

import pytest
from playwright.sync_api import expect

from apps.broadcasts.models import Broadcast
from apps.broadcasts.tests.factories import many_recipients, published_template, segment_with
from apps.delivery.models import ProviderConfig
from apps.messaging.models import Message
from apps.tenants.models import Role
from apps.tenants.tests.factories import TenantFactory, staff_member
from tests.browser.test_admin_login import log_in

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = os.environ.get("SIGNALBOX_SCREENSHOTS")
MEMBERS = 300


def test_marketer_starts_a_broadcast_and_watches_it_reach_100_percent(page, live_server, celery_worker,
                                                                       tmp_path):
    tenant = TenantFactory(name="Acme", slug="acme")
    ProviderConfig.objects.create(tenant=tenant, name="log", channel="email", kind="log")
    published_template(tenant, key="november-news")
    segment = segment_with(tenant, many_recipients(tenant, MEMBERS), key="active-customers")
    staff_member(tenant=tenant, role=Role.MARKETER, username="marketer")
    log_in(page, live_server, "marketer")

    progress = start_broadcast_and_wait(page, live_server, tenant, segment, "November news", "november-news")
    assert f"sent {MEMBERS}" in progress.locator(".sb-counts").inner_text()
    page.screenshot(path=os.path.join(SCREENSHOTS or str(tmp_path), "broadcast-progress.png"), full_page=True)
    broadcast = Broadcast.objects.get()
    assert Message.objects.filter(broadcast=broadcast, status="sent").count() == MEMBERS

    page.click("text=The broadcast's messages")  # the message list, filtered to this broadcast
    assert f"broadcast={broadcast.pk}" in page.url
    expect(page.locator("#result_list tbody tr")).to_have_count(min(MEMBERS, 100))  # a page of them


def start_broadcast_and_wait(page, live_server, tenant, segment, name: str, template_key: str):
    """Create the broadcast in the admin, start it and wait for its bar to reach 100 %."""
    page.goto(f"{live_server.url}/admin/broadcasts/broadcast/add/")
    page.select_option("#id_tenant", str(tenant.pk))
    page.fill("#id_name", name)
    page.fill("#id_template_key", template_key)
    page.select_option("#id_segment", str(segment.pk))
    page.check("#id_channels input[value=email]")
    page.click("input[name=_save]")
    assert "saved as a draft" in page.locator(".messagelist").inner_text()

    page.click("input[name=_start]")
    assert f"{name} is now sending." in page.locator(".messagelist").inner_text()
    progress = page.locator(".sb-broadcast-progress")
    # The bar moves by itself (the page polls the progress endpoint) until every message is sent.
    page.wait_for_function("document.querySelector('.sb-broadcast-progress progress').value === 100",
                           timeout=90_000)
    assert progress.locator(".sb-percent").inner_text() == "100 %"
    return progress
