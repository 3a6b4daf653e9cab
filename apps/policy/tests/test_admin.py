"""The suppression list and categories in the admin: scoped to the staff user's tenants."""

import pytest

from apps.policy.models import SuppressedAddress
from apps.tenants.models import Role
from apps.tenants.tests.factories import TenantFactory, staff_member

pytestmark = pytest.mark.django_db


def test_support_sees_and_removes_suppressed_addresses_of_their_tenant_only(client):
    alice, charlie = TenantFactory(name="Alice"), TenantFactory(name="Charlie")
    mine = SuppressedAddress.objects.create(tenant=alice, channel="email", address="ada@example.com",
                                            reason="asked by phone", source="manual")
    theirs = SuppressedAddress.objects.create(tenant=charlie, channel="email", address="bob@example.com")
    client.force_login(staff_member(tenant=alice, role=Role.SUPPORT))
    page = client.get("/admin/policy/suppressedaddress/").content.decode()
    assert "ada@example.com" in page and "bob@example.com" not in page
    assert client.get(f"/admin/policy/suppressedaddress/{theirs.pk}/change/").status_code in (302, 404)
    response = client.post(f"/admin/policy/suppressedaddress/{mine.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert list(SuppressedAddress.objects.all()) == [theirs]


def test_a_tenant_admin_adds_an_address_normalised(client):
    alice = TenantFactory(name="Alice")
    client.force_login(staff_member(tenant=alice, role=Role.TENANT_ADMIN))
    response = client.post("/admin/policy/suppressedaddress/add/", {
        "tenant": alice.pk, "channel": "email", "address": " Ada@Example.COM ", "reason": "complained",
        "source": "manual"})
    assert response.status_code == 302
    assert SuppressedAddress.objects.get().address == "ada@example.com"


def test_a_category_with_an_unknown_channel_is_refused_in_the_admin(client):
    alice = TenantFactory(name="Alice")
    client.force_login(staff_member(tenant=alice, role=Role.MARKETER))
    response = client.post("/admin/policy/category/add/", {
        "tenant": alice.pk, "key": "marketing", "name": "Marketing", "kind": "commercial",
        "default_priority": "normal", "channels_off": ["fax"]})
    assert response.status_code == 200 and "fax" in response.content.decode()
    response = client.post("/admin/policy/category/add/", {
        "tenant": alice.pk, "key": "marketing", "name": "Marketing", "kind": "commercial",
        "default_priority": "low", "channels_off": ["sms"]})
    assert response.status_code == 302


def test_a_tenant_admin_adds_a_flag_rule(client):
    from apps.policy.models import FlagRule

    alice = TenantFactory(name="Alice")
    client.force_login(staff_member(tenant=alice, role=Role.TENANT_ADMIN))
    form = {"tenant": alice.pk, "name": "Checkout", "enabled": "on", "flag": "in-checkout",
            "categories": "cart, marketing", "set_by_event": "checkout.started", "cleared_by_event": "",
            "expires_after_minutes": "", "action": "defer"}
    response = client.post("/admin/policy/flagrule/add/", form)
    assert response.status_code == 200 and "never ends" in response.content.decode()
    response = client.post("/admin/policy/flagrule/add/", {**form, "expires_after_minutes": "60"})
    assert response.status_code == 302
    assert FlagRule.objects.get().categories == ["cart", "marketing"]
