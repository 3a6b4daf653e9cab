"""The journey editor in the admin: validation on save (errors name the step), activation, the
diagram with counts, the runs on the recipient page, tenant scoping."""

import json

import pytest
from django.urls import reverse

from apps.events.models import Event
from apps.events.services import EventDraft, events_process, events_record
from apps.journeys.models import Journey
from apps.journeys.tests.factories import ABANDONED_CART, active_journey, templates
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.models import Role
from apps.tenants.tests.factories import TenantFactory, staff_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant():
    tenant = TenantFactory(name="Alice Co", slug="alice")
    templates(tenant, "cart-reminder", "cart-mail")
    return tenant


@pytest.fixture
def marketer(client, tenant):
    user = staff_member(tenant=tenant, role=Role.MARKETER, username="mara", email="mara@alice.example")
    client.force_login(user)
    return user


def form(tenant, definition, **fields):
    return {"tenant": tenant.pk, "key": "cart", "name": "Abandoned cart",
            "definition": json.dumps(definition), **fields}


def test_errors_name_their_step_and_nothing_is_saved(client, marketer, tenant):
    bad = {**ABANDONED_CART, "steps": [
        {"id": "later", "type": "delay", "duration": "45m", "next": "sms"},
        {"id": "sms", "type": "send", "template": "unpublished", "channels": ["sms"], "next": "nowhere"},
        {"id": "check", "type": "branch", "paths": [
            {"conditions": {"field": "trigger.properties.total", "op": "about", "value": 1},
             "next": "sms"}]}]}
    response = client.post(reverse("admin:journeys_journey_add"), form(tenant, bad))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["definition"]
    assert ("steps.sms.template: The template 'unpublished' does not exist or has no published version."
            in errors)
    assert "steps.sms.next: Points to 'nowhere', which is not a step of this journey." in errors
    assert any(e.startswith("steps.check.paths[0].conditions.op: Unknown operator 'about'") for e in errors)
    assert not Journey.objects.exists()


def test_a_marketer_saves_activates_and_sees_the_diagram_with_counts(client, marketer, tenant):
    response = client.post(reverse("admin:journeys_journey_add"), form(tenant, ABANDONED_CART))
    assert response.status_code == 302
    journey = Journey.objects.get()
    change = reverse("admin:journeys_journey_change", args=[journey.pk])
    response = client.post(change, {**form(tenant, ABANDONED_CART), "_activate": "1"})
    assert response.status_code == 302
    journey.refresh_from_db()
    assert journey.status == "active" and journey.live_version.number == 1

    ada = RecipientFactory(tenant=tenant, external_id="ada", phone="+14155550101")
    events_record(tenant=tenant, source=Event.Source.API, drafts=[
        EventDraft(name="cart.abandoned", recipient_id=ada.pk)])
    events_process()
    page = client.get(change).content.decode()
    assert "<svg" in page and 'data-step="later"' in page and "entered 1 · waiting 1 · passed 0" in page

    recipient_page = client.get(reverse("admin:recipients_recipient_change", args=[ada.pk])).content.decode()
    assert "Abandoned cart v1" in recipient_page and "<b>later</b> (delay)" in recipient_page
    assert "here now" in recipient_page


def test_a_journey_with_errors_cannot_be_activated_and_says_why(client, marketer, tenant):
    journey = Journey.objects.create(tenant=tenant, key="cart", name="Cart", definition={
        **ABANDONED_CART, "steps": [{"id": "a", "type": "send", "template": "gone", "channels": ["sms"]}]})
    change = reverse("admin:journeys_journey_change", args=[journey.pk])
    response = client.post(change, {**form(tenant, journey.definition), "_activate": "1"}, follow=True)
    assert "steps.a.template" in response.content.decode()
    journey.refresh_from_db()
    assert journey.status == "draft" and journey.live_version is None


def test_another_tenants_journey_is_not_found(client, marketer):
    other = active_journey(TenantFactory(slug="charlie"), {"trigger": {"event": "x"}, "steps": [
        {"id": "d", "type": "delay", "duration": "1d"}]})
    assert client.get(reverse("admin:journeys_journey_change", args=[other.pk])).status_code == 302
    assert "charlie" not in client.get(reverse("admin:journeys_journey_changelist")).content.decode()


def test_support_sees_journeys_but_cannot_change_them(client, tenant):
    journey = active_journey(tenant, ABANDONED_CART)
    client.force_login(staff_member(tenant=tenant, role=Role.SUPPORT, username="sue"))
    change = reverse("admin:journeys_journey_change", args=[journey.pk])
    page = client.get(change)
    assert page.status_code == 200 and 'name="_activate"' not in page.content.decode()
    client.post(change, {**form(tenant, ABANDONED_CART), "_archive": "1"})
    journey.refresh_from_db()
    assert journey.status == "active"


@pytest.mark.parametrize(("raw", "message"), [
    ("{\"steps\": [", "Enter a valid JSON."),
    ('"steps"', "definition: A journey definition must be a JSON object."),
    ('{"trigger": {"event": "x"}, "start": [1], "steps": [{"id": "a", "type": "exit"}]}',
     "start: The start step '[1]' does not exist."),
    ('{"trigger": {"event": "x"}, "steps": [{"id": ["a"], "type": "exit"}]}',
     "steps[0].id: Each step needs an id: letters, digits, - or _."),
    ('{"steps": ' + "[" * 5000 + "]" * 5000 + "}",
     "Enter valid JSON: arrays and objects nest deeper than 32 levels."),
])
def test_malformed_definitions_are_form_errors_not_crashes(client, marketer, tenant, raw, message):
    response = client.post(reverse("admin:journeys_journey_add"), {**form(tenant, {}), "definition": raw})
    assert response.status_code == 200
    assert message in response.context["adminform"].form.errors["definition"]


def test_the_change_page_carries_the_conditions_editor(client, marketer, tenant):
    journey = Journey.objects.create(tenant=tenant, key="cart", name="Cart", definition={
        **ABANDONED_CART, "trigger": {"event": "cart.abandoned", "conditions": {
            "field": "trigger.properties.total", "op": "gte", "value": 50}}})
    page = client.get(reverse("admin:journeys_journey_change", args=[journey.pk])).content.decode()
    assert "journeys/conditions.js" in page and "journeys/conditions.css" in page
    assert '<script id="sb-condition-operators" type="application/json">' in page
    assert '"within_last_days": "within the last N days"' in page
    # The rows are read from the definition, which stays the field that is posted.
    assert "&quot;field&quot;: &quot;trigger.properties.total&quot;" in page


def test_condition_errors_reach_the_editor_by_path(client, marketer, tenant):
    bad = {**ABANDONED_CART, "trigger": {"event": "cart.abandoned", "conditions": {"any": [
        {"field": "", "op": "eq", "value": 1}]}}}
    response = client.post(reverse("admin:journeys_journey_add"), form(tenant, bad))
    assert response.status_code == 200
    assert response.context["condition_errors"] == {
        "trigger.conditions.any[0].field": [
            "Give a field path starting with one of: trigger, event, recipient, events, messages, history, "
            "webhooks, batch."]}
    assert '<script id="sb-condition-errors" type="application/json">' in response.content.decode()


def test_support_gets_no_conditions_editor(client, tenant):
    journey = active_journey(tenant, ABANDONED_CART)
    client.force_login(staff_member(tenant=tenant, role=Role.SUPPORT, username="sue"))
    page = client.get(reverse("admin:journeys_journey_change", args=[journey.pk])).content.decode()
    assert "sb-condition-operators" not in page


def test_the_editor_checks_the_new_step_types_and_the_diagram_draws_them(client, marketer, tenant):
    steps = [
        {"id": "collect", "type": "digest", "key": "{{ data.thread_id", "window": "10m", "next": "limit"},
        {"id": "limit", "type": "throttle", "limit": 3, "window": "1h", "next": "crm"},
        {"id": "crm", "type": "webhook", "url": "https://crm.example/x", "body": {"id": "{{ recipient.id }}"},
         "timeout": 60, "next": "tag", "on_failure": "mail"},
        {"id": "tag", "type": "update_profile", "set": {"vip": "yes"}, "next": "mail"},
        {"id": "mail", "type": "send", "template": "cart-mail", "channels": ["email"]}]
    bad = {**ABANDONED_CART, "steps": steps}
    response = client.post(reverse("admin:journeys_journey_add"), form(tenant, bad))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["definition"]
    assert [e.split(":")[0] for e in errors] == ["steps.collect.key", "steps.crm.timeout"]
    assert not Journey.objects.exists()

    steps[0]["key"], steps[2]["timeout"] = "{{ data.thread_id }}", 5
    response = client.post(reverse("admin:journeys_journey_add"), form(tenant, {**bad, "steps": steps}))
    assert response.status_code == 302
    change = reverse("admin:journeys_journey_change", args=[Journey.objects.get().pk])
    page = client.get(change).content.decode()
    for step in ("collect · digest", "limit · throttle", "crm · webhook", "tag · update_profile"):
        assert step in page
    assert 'class="failure-edge"' in page
