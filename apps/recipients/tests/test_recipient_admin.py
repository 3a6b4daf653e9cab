import pytest
from django.urls import reverse

from apps.recipients.models import Recipient
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.models import Role
from apps.tenants.tests.factories import TenantFactory, staff_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant():
    return TenantFactory()


@pytest.fixture
def admin_client_for(client, tenant):
    client.force_login(staff_member(tenant=tenant, role=Role.TENANT_ADMIN))
    return client


def _post(client, tenant, **fields):
    data = {"tenant": tenant.pk, "external_id": "u1", "attributes": "{}", **fields}
    return client.post(reverse("admin:recipients_recipient_add"), data)


@pytest.mark.parametrize("field,value,message", [
    ("phone", "555-0100", "international format"),
    ("phone", "+1 000", "international format"),
    ("timezone", "Europe/Atlantis", "IANA time zone"),
    ("locale", "english please", "locale tag"),
    ("email", "not-an-email", "valid email"),
])
def test_invalid_profile_fields_are_form_errors_and_nothing_is_saved(
    admin_client_for, tenant, field, value, message
):
    response = _post(admin_client_for, tenant, **{field: value})
    assert response.status_code == 200
    assert message in str(response.context["adminform"].form.errors[field])
    assert not Recipient.objects.exists()


def test_valid_profile_is_saved_normalised(admin_client_for, tenant):
    response = _post(admin_client_for, tenant, email="Ada@Example.COM", phone="+44 20 7183 8750",
                     timezone="Europe/London", locale="en_gb", attributes='{"plan": "pro"}')
    assert response.status_code == 302
    recipient = Recipient.objects.get()
    assert (recipient.email, recipient.phone, recipient.locale) == (
        "ada@example.com", "+442071838750", "en-GB")
    assert recipient.attributes == {"plan": "pro"}


def test_external_id_is_unique_per_tenant_only(admin_client_for, tenant):
    RecipientFactory(tenant=tenant, external_id="u1")
    RecipientFactory(tenant=TenantFactory(), external_id="u2")
    response = _post(admin_client_for, tenant)
    assert response.status_code == 200 and not response.context["adminform"].form.is_valid()
    assert _post(admin_client_for, tenant, external_id="u2").status_code == 302


@pytest.mark.parametrize("query", ["ada@example.com", "ADA@example.com", "+14155550101",
                                   "+1 415-555-0101", "ext-ada"])
def test_search_by_email_phone_or_external_id(admin_client_for, tenant, query):
    RecipientFactory(tenant=tenant, external_id="ext-ada", email="ada@example.com",
                     phone="+14155550101")
    RecipientFactory(tenant=tenant, external_id="ext-bob", email="bob@example.com")
    page = admin_client_for.get(reverse("admin:recipients_recipient_changelist"), {"q": query})
    assert list(page.context["cl"].result_list.values_list("external_id", flat=True)) == ["ext-ada"]
