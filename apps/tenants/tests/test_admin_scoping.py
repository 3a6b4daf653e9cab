"""Staff of tenant A see and pick only A's objects (and A's sub-tenants'); never B's."""

import pytest
from django.urls import reverse

from apps.recipients.models import Recipient
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants import services
from apps.tenants.models import ApiKey, Membership, Role, Tenant
from apps.tenants.tests.factories import TenantFactory, UserFactory, staff_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_tenant():
    return TenantFactory(name="Alice Co", slug="alice")


@pytest.fixture
def charlie_tenant():
    """The second tenant whose data must never leak."""
    return TenantFactory(name="Charlie Co", slug="charlie")


@pytest.fixture
def alice(client, alice_tenant):
    user = staff_member(tenant=alice_tenant, role=Role.TENANT_ADMIN, username="alice")
    client.force_login(user)
    return user


def test_changelists_show_only_own_and_sub_tenant_objects(client, alice, alice_tenant, charlie_tenant):
    child = TenantFactory(name="Alice Kids", parent=alice_tenant)
    RecipientFactory(tenant=alice_tenant, external_id="alice-user")
    RecipientFactory(tenant=child, external_id="alice-child-user")
    RecipientFactory(tenant=charlie_tenant, external_id="charlie-user")
    services.api_key_create(tenant=charlie_tenant, name="charlie-backend")

    recipients = client.get(reverse("admin:recipients_recipient_changelist")).content.decode()
    assert "alice-user" in recipients and "alice-child-user" in recipients
    assert "charlie-user" not in recipients
    tenants = client.get(reverse("admin:tenants_tenant_changelist")).content.decode()
    assert "Alice Kids" in tenants and "Charlie Co" not in tenants
    keys = client.get(reverse("admin:tenants_apikey_changelist")).content.decode()
    assert "charlie-backend" not in keys


def test_another_tenants_object_cannot_be_opened(client, alice, charlie_tenant):
    other = RecipientFactory(tenant=charlie_tenant)
    for url in (reverse("admin:recipients_recipient_change", args=[other.pk]),
                reverse("admin:tenants_tenant_change", args=[charlie_tenant.pk])):
        response = client.get(url)
        assert response.status_code == 302  # the admin's "does not exist" redirect
        assert response.url == reverse("admin:index")


def test_another_tenant_cannot_be_selected(client, alice, alice_tenant, charlie_tenant):
    add_url = reverse("admin:recipients_recipient_add")
    form = client.get(add_url).content.decode()
    assert "Alice Co" in form and "Charlie Co" not in form
    response = client.post(add_url, {"tenant": charlie_tenant.pk, "external_id": "sneaky",
                                     "attributes": "{}"})
    assert response.status_code == 200
    assert "Select a valid choice" in str(response.context["adminform"].form.errors["tenant"])
    assert not Recipient.objects.filter(external_id="sneaky").exists()


def test_tenant_admin_creates_a_child_tenant_but_not_a_top_level_one(client, alice, alice_tenant):
    add_url = reverse("admin:tenants_tenant_add")
    response = client.post(add_url, {"name": "Alice EU", "slug": "alice-eu",
                                     "parent": alice_tenant.pk})
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Tenant.objects.get(slug="alice-eu").parent == alice_tenant
    response = client.post(add_url, {"name": "Rogue", "slug": "rogue"})
    assert "parent" in response.context["adminform"].form.errors
    assert not Tenant.objects.filter(slug="rogue").exists()


def test_too_deep_a_tenant_is_a_form_error(client, alice, alice_tenant):
    parent = alice_tenant
    for level in range(3):
        parent = TenantFactory(parent=parent, slug=f"level-{level}")
    response = client.post(reverse("admin:tenants_tenant_add"),
                           {"name": "Five", "slug": "five", "parent": parent.pk})
    assert "at most 4 levels" in str(response.context["adminform"].form.errors["parent"])
    assert not Tenant.objects.filter(slug="five").exists()


def test_tenant_admin_adds_a_membership_for_their_staff(client, alice, alice_tenant, charlie_tenant):
    child = TenantFactory(parent=alice_tenant)
    bob = staff_member(tenant=alice_tenant, role=Role.SUPPORT, username="bob")
    stranger = staff_member(tenant=charlie_tenant, role=Role.SUPPORT, username="stranger")
    add_url = reverse("admin:tenants_membership_add")
    form = client.get(add_url).content.decode()
    assert ">bob<" in form and ">stranger<" not in form
    response = client.post(add_url, {"tenant": child.pk, "user": bob.pk, "role": Role.MARKETER})
    assert response.status_code == 302
    assert set(bob.groups.values_list("name", flat=True)) == {"Support", "Marketer"}
    response = client.post(add_url, {"tenant": child.pk, "user": stranger.pk, "role": "support"})
    assert "user" in response.context["adminform"].form.errors
    assert not Membership.objects.filter(user=stranger, tenant=child).exists()


def test_support_role_is_read_only(client, alice_tenant):
    support = staff_member(tenant=alice_tenant, role=Role.SUPPORT, username="sue")
    client.force_login(support)
    recipient = RecipientFactory(tenant=alice_tenant, email="ada@example.com")
    url = reverse("admin:recipients_recipient_change", args=[recipient.pk])
    page = client.get(url)
    assert page.status_code == 200 and "ada@example.com" in page.content.decode()
    assert 'name="_save"' not in page.content.decode()
    client.post(url, {"tenant": alice_tenant.pk, "email": "changed@example.com", "attributes": "{}"})
    recipient.refresh_from_db()
    assert recipient.email == "ada@example.com"
    assert client.get(reverse("admin:tenants_apikey_changelist")).status_code == 403


def test_role_counts_per_tenant(client, alice_tenant, charlie_tenant):
    """Tenant admin in Alice, Support in Charlie: may change Alice's recipients, not Charlie's."""
    user = staff_member(tenant=alice_tenant, role=Role.TENANT_ADMIN)
    services.membership_save(membership=Membership(tenant=charlie_tenant, user=user, role=Role.SUPPORT))
    client.force_login(user)
    mine = RecipientFactory(tenant=alice_tenant)
    theirs = RecipientFactory(tenant=charlie_tenant)
    assert 'name="_save"' in client.get(
        reverse("admin:recipients_recipient_change", args=[mine.pk])).content.decode()
    page = client.get(reverse("admin:recipients_recipient_change", args=[theirs.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()


def test_removing_the_last_membership_removes_the_role_group(alice_tenant):
    user = staff_member(tenant=alice_tenant, role=Role.MARKETER)
    services.membership_delete(membership=Membership.objects.get(user=user))
    assert not user.groups.exists()


def test_superuser_sees_everything(client, alice_tenant, charlie_tenant):
    client.force_login(UserFactory(is_superuser=True, is_staff=True))
    RecipientFactory(tenant=charlie_tenant, external_id="charlie-user")
    assert "charlie-user" in client.get(reverse("admin:recipients_recipient_changelist")).content.decode()
    assert ApiKey.objects.count() == 0

