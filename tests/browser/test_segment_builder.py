"""A Marketer builds a segment in the admin with the conditions form, saves it, watches the
recompute (a real Celery worker runs it) and sees its size and members — a condition the server
refuses shows its error on the row and nothing is saved —, then starts a broadcast to it and
watches the progress bar reach 100 %."""

import json

import pytest

from apps.broadcasts.tests.factories import published_template
from apps.delivery.models import ProviderConfig
from apps.messaging.models import Message
from apps.recipients.tests.factories import RecipientFactory
from apps.segments.models import Segment
from apps.tenants.models import Role
from apps.tenants.tests.factories import TenantFactory, staff_member
from tests.browser.test_admin_login import log_in
from tests.browser.test_broadcast_progress import start_broadcast_and_wait
from tests.browser.test_journey_conditions import add_row

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_marketer_builds_a_segment_sees_its_size_and_broadcasts_to_it(page, live_server, celery_worker):
    tenant = TenantFactory(name="Acme", slug="acme")
    ProviderConfig.objects.create(tenant=tenant, name="log", channel="email", kind="log")
    published_template(tenant, key="pro-news")
    pros = [RecipientFactory(tenant=tenant, external_id=f"pro-{i}", attributes={"plan": "pro", "country": c})
            for i, c in enumerate(["DE", "AT", "FR"])]
    RecipientFactory(tenant=tenant, attributes={"plan": "free", "country": "DE"})
    staff_member(tenant=tenant, role=Role.MARKETER, username="marketer")
    log_in(page, live_server, "marketer")
    page.goto(f"{live_server.url}/admin/segments/segment/add/")
    page.select_option("#id_tenant", str(tenant.pk))
    page.fill("#id_key", "pro-dach")
    page.fill("#id_name", "Pro in DACH")

    conditions = page.locator("fieldset.sb-conditions[data-path='conditions']")
    add_row(conditions, "recipient.attributes.plan", "eq", "pro")
    add_row(conditions, "history.signup", "eq", "yesterday")  # refused: history tells when, not what
    page.click("input[name=_continue]")
    error = "conditions.all[1].op: 'eq' does not apply to history.signup"
    assert error in page.locator(".field-conditions .errorlist").inner_text()
    row = page.locator("fieldset.sb-conditions[data-path='conditions'] .sb-condition-row").nth(1)
    assert error in row.locator(".errorlist").inner_text()
    assert not Segment.objects.exists()

    row.locator(".sb-remove").click()
    add_row(page.locator("fieldset.sb-conditions[data-path='conditions']"),
            "recipient.attributes.country", "in", "DE, AT")
    expected = {"all": [{"field": "recipient.attributes.plan", "op": "eq", "value": "pro"},
                        {"field": "recipient.attributes.country", "op": "in", "value": ["DE", "AT"]}]}
    assert json.loads(page.input_value("#id_conditions")) == expected
    page.click("input[name=_continue]")
    assert "was added successfully" in page.locator(".messagelist").inner_text()

    # The worker computes it; the page follows the progress and shows the result.
    page.wait_for_function(
        "document.getElementById('sb-segment-status').textContent.trim() === 'ready'", timeout=30_000)
    assert page.locator(".field-size .readonly").inner_text().strip() == "2"
    sample = page.locator("#sb-segment-sample").inner_text()
    assert "pro-0" in sample and "pro-1" in sample and "pro-2" not in sample
    assert Segment.objects.get().conditions == expected
    assert {r.pk for r in pros[:2]} == set(
        Segment.objects.get().memberships.values_list("recipient_id", flat=True))

    page.goto(f"{live_server.url}/admin/segments/segment/")
    assert "pro-dach" in page.locator("#result_list").inner_text()

    segment = Segment.objects.get()
    progress = start_broadcast_and_wait(page, live_server, tenant, segment, "Pro news", "pro-news")
    assert "sent 2" in progress.locator(".sb-counts").inner_text()
    assert {m.recipient_id for m in Message.objects.filter(status="sent")} == {r.pk for r in pros[:2]}
