"""A Marketer edits a journey's conditions with the form, not the JSON: adds rows (field path,
operator, value), saves, and finds them in the stored definition; a row the server rejects shows
its error on that row and in the step's errors, and nothing is saved."""

import json

import pytest

from apps.journeys.models import Journey
from apps.journeys.tests.factories import templates
from apps.tenants.models import Role
from apps.tenants.tests.factories import TenantFactory, staff_member
from tests.browser.test_admin_login import log_in

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BIG_ORDER = {"field": "trigger.properties.total", "op": "gt", "value": 100}
DEFINITION = {
    "trigger": {"event": "order.placed"}, "reentry": {"rule": "every_time"},
    "exit_events": [{"event": "order.refunded", "conditions": {"not": BIG_ORDER}}],
    "steps": [
        {"id": "check", "type": "branch", "paths": [{"conditions": BIG_ORDER, "next": "thanks"}],
         "default": "review"},
        {"id": "review", "type": "wait", "event": "review.posted", "timeout": "3d", "on_match": "thanks"},
        {"id": "thanks", "type": "send", "template": "thanks", "channels": ["email"]},
    ],
}


def slot(page, path):
    return page.locator(f"fieldset.sb-conditions[data-path='{path}']")


def add_row(fieldset, field, op, value=None):
    fieldset.locator(".sb-add").click()
    row = fieldset.locator(".sb-condition-row").last
    row.get_by_label("Field path").fill(field)
    row.get_by_label("Operator").select_option(op)
    if value is not None:
        row.get_by_label("Value").fill(value)
    return row


def save(page):
    page.click("input[name=_continue]")


def test_marketer_edits_conditions_with_the_form(page, live_server):
    tenant = TenantFactory(name="Acme", slug="acme")
    templates(tenant, "thanks")
    staff_member(tenant=tenant, role=Role.MARKETER, username="marketer")
    journey = Journey.objects.create(tenant=tenant, key="orders", name="Orders", definition=DEFINITION)
    log_in(page, live_server, "marketer")
    page.goto(f"{live_server.url}/admin/journeys/journey/{journey.pk}/change/")

    # The stored condition is shown as a row; a new trigger row is in the JSON before saving.
    branch = slot(page, "steps.check.paths[0].conditions")
    existing = branch.locator(".sb-condition-row")
    assert existing.count() == 1
    assert existing.get_by_label("Field path").input_value() == "trigger.properties.total"
    assert existing.get_by_label("Operator").input_value() == "gt"
    assert existing.get_by_label("Value").input_value() == "100"
    add_row(slot(page, "trigger.conditions"), "trigger.properties.plan", "in", "pro, team")
    plan_in = {"field": "trigger.properties.plan", "op": "in", "value": ["pro", "team"]}
    assert json.loads(page.input_value("#id_definition"))["trigger"]["conditions"] == plan_in
    save(page)
    assert "was changed successfully" in page.locator(".messagelist").inner_text()
    journey.refresh_from_db()
    assert journey.definition["trigger"]["conditions"] == plan_in
    assert journey.definition["steps"][0]["paths"][0]["conditions"] == BIG_ORDER

    # A second branch row, "any" of them, with a value "within the last N days" refuses.
    branch = slot(page, "steps.check.paths[0].conditions")
    branch.get_by_label("Match").select_option("any")
    row = add_row(branch, "history.review.posted", "within_last_days", "soon")
    save(page)
    error = "steps.check.paths[0].conditions.any[1].value: Give a positive number of days."
    assert error in page.locator(".field-definition .errorlist").inner_text()
    row = slot(page, "steps.check.paths[0].conditions").locator(".sb-condition-row").nth(1)
    assert error in row.locator(".errorlist").inner_text()
    assert row.get_by_label("Value").get_attribute("aria-invalid") == "true"
    assert row.get_by_label("Value").input_value() == "soon"
    journey.refresh_from_db()
    assert journey.definition["steps"][0]["paths"][0]["conditions"] == BIG_ORDER

    # An empty field path on the wait step is refused too, on that step.
    add_row(slot(page, "steps.review.conditions"), "", "exists")
    save(page)
    errors = page.locator(".field-definition .errorlist").inner_text()
    assert "steps.review.conditions.field: Give a field path starting with one of" in errors
    assert "steps.review.conditions.field" in slot(page, "steps.review.conditions").inner_text()

    # Fixed: the days become a number, the empty row is removed; both saved as the JSON.
    row = slot(page, "steps.check.paths[0].conditions").locator(".sb-condition-row").nth(1)
    row.get_by_label("Value").fill("30")
    slot(page, "steps.review.conditions").get_by_role("button", name="Remove condition 1").click()
    save(page)
    assert "was changed successfully" in page.locator(".messagelist").inner_text()
    journey.refresh_from_db()
    assert journey.definition["steps"][0]["paths"][0]["conditions"] == {"any": [
        BIG_ORDER, {"field": "history.review.posted", "op": "within_last_days", "value": 30}]}
    assert "conditions" not in journey.definition["steps"][1]
    # What the form cannot show ("not", nested groups) it leaves to the JSON, untouched.
    assert "edit them in the JSON" in slot(page, "exit_events[0].conditions").inner_text()
    assert journey.definition["exit_events"] == DEFINITION["exit_events"]

    # A branch path left without rows is refused on the path itself.
    branch = slot(page, "steps.check.paths[0].conditions")
    for _ in range(2):
        branch.get_by_role("button", name="Remove condition 1").click()
    save(page)
    error = "steps.check.paths[0].conditions: Give this path's conditions."
    assert error in slot(page, "steps.check.paths[0].conditions").locator(".errorlist").inner_text()
    journey.refresh_from_db()
    assert len(journey.definition["steps"][0]["paths"][0]["conditions"]["any"]) == 2

    # A power user's JSON edit shows in the form.
    edited = {**journey.definition, "trigger": {"event": "order.placed", "conditions": {
        "field": "recipient.attributes.country", "op": "ne", "value": "FR"}}}
    page.fill("#id_definition", json.dumps(edited))
    page.locator("#id_definition").dispatch_event("change")
    trigger_row = slot(page, "trigger.conditions").locator(".sb-condition-row")
    assert trigger_row.count() == 1
    assert trigger_row.get_by_label("Operator").input_value() == "ne"
    assert trigger_row.get_by_label("Value").input_value() == "FR"
