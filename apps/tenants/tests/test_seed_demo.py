import json

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from apps.content.models import Brand, Template, TemplateVersion
from apps.content.services import template_render_for_send
from apps.recipients.models import Recipient
from apps.tenants import services
from apps.tenants.models import ApiKey, Membership, Tenant

pytestmark = pytest.mark.django_db


def seed() -> dict:
    from io import StringIO

    out = StringIO()
    call_command("seed_demo", "--json", stdout=out)
    return json.loads(out.getvalue())


def counts() -> tuple[int, ...]:
    return tuple(m.objects.count() for m in (Tenant, Membership, ApiKey, Recipient, Template, TemplateVersion,
                                             Brand))


def test_seed_demo_is_idempotent_and_prints_working_credentials():
    first = seed()
    before = counts()
    second = seed()
    assert counts() == before == (2, 3, 2, 4, 5, 5, 2)
    assert first == second
    assert first["tenant"] == "acme"
    assert services.api_key_authenticate(token=first["secret_key"]).kind == "secret"
    assert services.api_key_authenticate(token=first["write_key"]).kind == "write"
    for username, password in first["users"].items():
        assert authenticate(username=username, password=password) is not None
    assert Tenant.objects.get(slug="acme-eu").parent.slug == "acme"


def test_demo_templates_are_published_and_render_for_both_tenants():
    assert seed()["templates"] == ["welcome", "nudge", "tips", "cart-reminder", "comment-digest"]
    acme, europe = Tenant.objects.get(slug="acme"), Tenant.objects.get(slug="acme-eu")
    for key, spec in (("welcome", {}), ("cart-reminder", {"cart": {"items": [{"name": "Shoes", "price": 5,
                                                                            "quantity": 1}], "total": 5}})):
        version, rendered = template_render_for_send(
            tenant=acme, key=key, channels=["email", "sms", "push", "inbox"],
            recipient={"locale": "en", "attributes": {"first_name": "Ada"}}, data=spec, message={})
        assert version.number == 1 and "Ada" in rendered["email"]["html"]
    _, acme_email = template_render_for_send(
        tenant=acme, key="welcome", channels=["email"], recipient={}, data={}, message={})
    _, europe_email = template_render_for_send(
        tenant=europe, key="welcome", channels=["email"], recipient={"locale": "de-DE"}, data={}, message={})
    assert "#4f46e5" in acme_email["email"]["html"] and "#059669" in europe_email["email"]["html"]
    assert europe_email["email"]["subject"].startswith("Willkommen bei Acme Europe")


def test_a_revoked_demo_key_is_replaced_on_the_next_run():
    first = seed()
    key = ApiKey.objects.get(prefix=first["secret_key"].rsplit("_", 1)[0])
    services.api_key_revoke(api_key=key)
    second = seed()
    assert second["secret_key"] != first["secret_key"]
    assert services.api_key_authenticate(token=second["secret_key"]) is not None


def test_demo_policy_has_the_four_categories_quiet_hours_a_cap_and_the_2_h_rule():
    from apps.policy.models import Category, PolicySettings, SuppressionRule
    from apps.policy.selectors import tenant_policy_load

    seed()
    seed()
    acme = Tenant.objects.get(slug="acme")
    kinds = dict(Category.objects.filter(tenant=acme).values_list("key", "kind"))
    assert {k: kinds[k] for k in ("security", "billing", "product-updates", "marketing")} == {
        "security": "transactional", "billing": "transactional", "product-updates": "product",
        "marketing": "commercial"}
    assert Category.objects.get(tenant=acme, key="security").required
    settings = PolicySettings.objects.get(tenant=acme)
    assert (f"{settings.quiet_start:%H:%M}", f"{settings.quiet_end:%H:%M}", settings.cap_per_day) == (
        "21:00", "08:00", 3)
    rule = SuppressionRule.objects.get(tenant=acme)
    assert (rule.kinds, rule.after_categories, rule.window_minutes) == (
        ["commercial"], ["billing", "security"], 120)
    # the sub-tenant inherits it all, and every demo template's category is known
    europe = tenant_policy_load(tenant=Tenant.objects.get(slug="acme-eu"))
    assert europe.settings == settings and len(europe.rules) == 1
    assert all(europe.category(t.category) for t in Template.objects.all())
