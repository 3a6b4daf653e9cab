"""A Marketer builds a 3-step journey in the admin of a real browser, is told about a bad step,
fixes it, activates the journey and sees its diagram; an event through the API starts a run that
Support-style eyes then find, step by step, on the recipient's page."""

import json
import os

import pytest
from rest_framework.test import APIClient

from apps.events.services import events_process
from apps.events.tests.factories import api_key_for
from apps.journeys.models import Journey
from apps.journeys.tests.factories import templates
from apps.recipients.models import Recipient
from apps.tenants.models import Role
from apps.tenants.tests.factories import TenantFactory, staff_member
from tests.browser.test_admin_login import log_in

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = os.environ.get("SIGNALBOX_SCREENSHOTS")

STEPS = [
    {"id": "hello", "type": "send", "template": "welcome", "channels": ["email"], "next": "pause"},
    {"id": "pause", "type": "delay", "duration": "1d", "next": "again"},
    {"id": "again", "type": "send", "template": "tipz", "channels": ["email"]},
]


def definition(steps):
    return json.dumps({"trigger": {"event": "signup"}, "reentry": {"rule": "once"}, "steps": steps}, indent=1)


def test_marketer_builds_activates_and_follows_a_journey(page, live_server, tmp_path):
    tenant = TenantFactory(name="Acme", slug="acme")
    templates(tenant, "welcome", "tips")
    staff_member(tenant=tenant, role=Role.MARKETER, username="marketer")
    log_in(page, live_server, "marketer")

    page.goto(f"{live_server.url}/admin/journeys/journey/add/")
    page.select_option("#id_tenant", str(tenant.pk))
    page.fill("#id_key", "onboarding")
    page.fill("#id_name", "Onboarding")
    page.fill("#id_definition", definition(STEPS))
    page.click("input[name=_continue]")
    errors = page.locator(".field-definition .errorlist").inner_text()
    assert "steps.again.template: The template 'tipz' does not exist or has no published version." in errors

    page.fill("#id_definition", definition([*STEPS[:2], {**STEPS[2], "template": "tips"}]))
    page.click("input[name=_continue]")
    page.click("input[name=_activate]")
    assert "Onboarding is now active." in page.locator(".messagelist").inner_text()
    diagram = page.locator("svg[aria-label='Journey diagram']")
    assert diagram.locator(".journey-step").count() == 3
    page.screenshot(path=os.path.join(SCREENSHOTS or str(tmp_path), "journey-diagram.png"), full_page=True)

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(tenant)}")
    response = api.post("/api/v1/events", {"name": "signup", "recipient": {"external_id": "ada",
                                                                           "email": "ada@example.com"}},
                        format="json")
    assert response.status_code == 202, response.content
    events_process()

    page.reload()
    hello = page.locator(".journey-step[data-step='hello']").text_content()
    assert "entered 1" in hello and "passed 1" in hello
    assert "waiting 1" in page.locator(".journey-step[data-step='pause']").text_content()

    ada = Recipient.objects.get(tenant=tenant, external_id="ada")
    page.goto(f"{live_server.url}/admin/recipients/recipient/{ada.pk}/change/")
    runs = page.locator(".field-journey_runs").inner_text()
    assert "Onboarding v1" in runs and "active" in runs
    assert "hello (send) entered" in runs and "— passed" in runs and "pause (delay) entered" in runs
    assert "here now" in runs
    assert Journey.objects.get(key="onboarding").status == "active"
