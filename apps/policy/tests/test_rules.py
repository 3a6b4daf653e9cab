"""Suppression rules: "no commercial message within 2 h after a billing or security message"."""

import uuid
from datetime import timedelta

import pytest

from apps.delivery.models import ProviderConfig
from apps.messaging import pipeline, services
from apps.messaging.models import Message, Status
from apps.policy.models import Kind, SuppressionRule
from apps.policy.services import rule_dry_run
from apps.policy.tests.factories import CategoryFactory
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.tests.factories import TenantFactory, staff_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant():
    tenant = TenantFactory()
    ProviderConfig.objects.create(tenant=tenant, name="mail", channel="email", kind="log")
    CategoryFactory(tenant=tenant, key="billing", kind=Kind.TRANSACTIONAL)
    CategoryFactory(tenant=tenant, key="security", kind=Kind.TRANSACTIONAL, required=True)
    CategoryFactory(tenant=tenant, key="product-updates", kind=Kind.PRODUCT)
    CategoryFactory(tenant=tenant, key="marketing", kind=Kind.COMMERCIAL)
    return tenant


def rule(tenant, **fields):
    return SuppressionRule.objects.create(**{
        "tenant": tenant, "name": "No commercial within 2 h of billing/security", "kinds": ["commercial"],
        "after_categories": ["billing", "security"], "window_minutes": 120, **fields})


def send(recipient, category, **fields):
    message = services.message_create(message=Message(
        tenant=recipient.tenant, recipient=recipient, channels=["email"], category=category,
        content={"email": {"subject": "Hi", "text": "Hello"}}, dedupe_key=f"test:{uuid.uuid4()}", **fields))
    pipeline.message_send(message_id=message.pk)
    message.refresh_from_db()
    return message


def test_commercial_within_2_h_of_billing_is_suppressed_naming_the_message(tenant, clock_travel):
    rule(tenant)
    recipient = RecipientFactory(tenant=tenant)
    assert send(recipient, "marketing").status == "sent"  # no billing message yet
    billing = send(recipient, "billing")
    held = send(recipient, "marketing")
    assert held.status == "suppressed"
    reason = held.timeline.last().reason
    assert reason == f"suppressed: commercial within 2 h of billing message #{billing.pk}"
    assert held.timeline.last().reason_code == "suppression_rule"
    assert send(recipient, "product-updates").status == "sent"  # not commercial
    assert send(recipient, "marketing", priority="critical").status == "sent"
    assert send(RecipientFactory(tenant=tenant), "marketing").status == "sent"  # someone else
    clock_travel(seconds=2 * 3600 + 1)
    assert send(recipient, "marketing").status == "sent"


def test_the_defer_action_waits_for_the_window_to_close(tenant):
    rule(tenant, action=SuppressionRule.Action.DEFER, window_minutes=90)
    recipient = RecipientFactory(tenant=tenant)
    security = send(recipient, "security")
    held = send(recipient, "marketing")
    assert held.status == "scheduled"
    assert held.next_attempt_at == security.sent_at + timedelta(minutes=90)
    reason = held.timeline.last().reason
    assert reason == f"deferred: commercial within 90 min of security message #{security.pk}"


def test_a_parent_tenants_rule_applies_below_and_a_disabled_rule_does_not(tenant):
    child = TenantFactory(parent=tenant)
    ProviderConfig.objects.create(tenant=child, name="mail", channel="email", kind="log")
    rule(tenant)
    recipient = RecipientFactory(tenant=child)
    send(recipient, "billing")
    assert send(recipient, "marketing").status == "suppressed"
    SuppressionRule.objects.update(enabled=False)
    SuppressionRule.objects.first().save()  # an edit: every process reloads the tenant's rules
    assert send(recipient, "marketing").status == "sent"


def test_dry_run_counts_what_the_rule_would_have_held(tenant, clock_travel):
    recipients = [RecipientFactory(tenant=tenant) for _ in range(3)]
    send(recipients[0], "billing")
    send(recipients[0], "marketing")  # held: 1
    send(recipients[0], "marketing", priority="critical")  # critical: never held
    send(recipients[1], "marketing")  # before any billing message: not held
    send(recipients[1], "billing")
    clock_travel(seconds=3 * 3600)
    send(recipients[1], "marketing")  # 3 h later: not held
    send(recipients[2], "security")
    send(recipients[2], "marketing")  # held: 2
    draft = rule(tenant, enabled=False)
    assert rule_dry_run(rule=draft) == (2, 8)
    assert rule_dry_run(rule=draft, sample=1) == (1, 1)
    assert Message.objects.filter(status=Status.SUPPRESSED).count() == 0  # a dry run changes nothing


@pytest.mark.parametrize(("fields", "error_field"), [
    ({"kinds": []}, "kinds"),
    ({"kinds": ["spam"]}, "kinds"),
    ({"after_categories": []}, "after_categories"),
    ({"window_minutes": 0}, "window_minutes"),
    ({"window_minutes": 31 * 24 * 60}, "window_minutes"),
])
def test_invalid_rules_are_refused_naming_the_field(tenant, fields, error_field):
    from django.core.exceptions import ValidationError

    draft = SuppressionRule(**{"tenant": tenant, "name": "r", "kinds": ["commercial"],
                               "after_categories": ["billing"], "window_minutes": 120, **fields})
    with pytest.raises(ValidationError) as error:
        draft.full_clean()
    assert error_field in error.value.message_dict


def test_the_admin_validates_categories_and_shows_the_dry_run(tenant, client):
    client.force_login(staff_member(tenant=tenant))
    response = client.post("/admin/policy/suppressionrule/add/", {
        "tenant": tenant.pk, "name": "r", "enabled": "on", "kinds": ["commercial"],
        "after_categories": "billing, nope", "window_minutes": 120, "action": "suppress"})
    assert response.status_code == 200 and "Not categories of" in response.content.decode()
    response = client.post("/admin/policy/suppressionrule/add/", {
        "tenant": tenant.pk, "name": "r", "enabled": "on", "kinds": ["commercial"],
        "after_categories": "billing, security", "window_minutes": 120, "action": "suppress"})
    assert response.status_code == 302
    saved = SuppressionRule.objects.get()
    assert saved.after_categories == ["billing", "security"]
    page = client.get(f"/admin/policy/suppressionrule/{saved.pk}/change/").content.decode()
    assert "This rule would have suppressed 0 of the last 0 messages." in page


def test_a_billing_message_earlier_in_the_same_batch_sets_the_rule_off(tenant):
    rule(tenant)
    recipient = RecipientFactory(tenant=tenant)
    messages = [services.message_create(message=Message(
        tenant=tenant, recipient=recipient, channels=["email"], category=category,
        content={"email": {"subject": "Hi", "text": "Hello"}}, dedupe_key=f"batch:{n}"))
        for n, category in enumerate(("marketing", "billing", "marketing"))]
    outcomes = pipeline.messages_send(message_ids=[m.pk for m in messages])
    assert [outcomes[m.pk].status for m in messages] == ["sent", "sent", "suppressed"]
    reason = Message.objects.get(pk=messages[2].pk).timeline.last().reason
    assert reason == f"suppressed: commercial within 2 h of billing message #{messages[1].pk}"
