import pytest

from apps.events.models import Event
from apps.events.tests.factories import EventFactory
from apps.recipients.models import Recipient, RecipientAlias
from apps.recipients.tests.factories import RecipientFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/recipients/{}"


def test_put_creates_then_updates_with_attribute_merge_and_null_removal(api, tenant):
    response = api.put(URL.format("user-1"), {
        "email": "Ada@Example.com", "phone": "+44 20 7183 8750", "locale": "pt_br",
        "timezone": "Europe/Lisbon", "attributes": {"plan": "pro", "beta": True}}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["email"] == "ada@example.com"
    assert response.json()["phone"] == "+442071838750"
    assert response.json()["locale"] == "pt-BR"
    response = api.put(URL.format("user-1"), {"attributes": {"beta": None, "seats": 3},
                                              "phone": None}, format="json")
    assert response.status_code == 200
    body = api.get(URL.format("user-1")).json()
    assert body["attributes"] == {"plan": "pro", "seats": 3}
    assert body["phone"] == "" and body["email"] == "ada@example.com"
    assert Recipient.objects.filter(tenant=tenant).count() == 1


def test_invalid_fields_are_named_and_nothing_is_written(api, tenant):
    RecipientFactory(tenant=tenant, external_id="user-1", email="old@example.com")
    response = api.put(URL.format("user-1"), {
        "email": "nope", "timezone": "Mars/Base", "phone": "123", "locale": 7,
        "attributes": []}, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"email", "timezone", "phone", "locale", "attributes"}
    assert Recipient.objects.get(external_id="user-1").email == "old@example.com"


def test_get_unknown_is_404_json(api):
    response = api.get(URL.format("nobody"))
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"


def test_delete_erases_personal_data_events_and_aliases(api, tenant):
    recipient = RecipientFactory(tenant=tenant, external_id="user-1", email="ada@example.com",
                                 attributes={"name": "Ada"})
    EventFactory(tenant=tenant, recipient=recipient, properties={"card": "4242"})
    RecipientAlias.objects.create(tenant=tenant, recipient=recipient, alias="anon-1")
    assert api.delete(URL.format("user-1")).status_code == 204
    recipient.refresh_from_db()
    assert (recipient.external_id, recipient.email, recipient.attributes) == (None, "", {})
    assert recipient.erased_at is not None
    assert not Event.objects.filter(recipient=recipient).exists()
    assert not RecipientAlias.objects.exists()
    assert api.get(URL.format("user-1")).status_code == 404
    assert api.delete(URL.format("user-1")).status_code == 404


def test_another_tenants_recipient_is_404_for_every_method(api, charlie_api, tenant):
    RecipientFactory(tenant=tenant, external_id="user-1", email="ada@example.com")
    assert charlie_api.get(URL.format("user-1")).status_code == 404
    assert charlie_api.delete(URL.format("user-1")).status_code == 404
    # A PUT from the other tenant creates its own recipient; Alice's is untouched.
    assert charlie_api.put(URL.format("user-1"), {"email": "x@example.com"}, format="json").status_code == 201
    assert Recipient.objects.get(tenant=tenant, external_id="user-1").email == "ada@example.com"


def test_a_sub_tenant_is_named_in_the_body_or_query(api, tenant):
    from apps.tenants.tests.factories import TenantFactory

    TenantFactory(slug="alice-eu", parent=tenant)
    TenantFactory(slug="stranger")
    response = api.put(URL.format("eu-1"), {"tenant": "alice-eu", "email": "e@example.com"}, format="json")
    assert response.status_code == 201
    assert Recipient.objects.get(external_id="eu-1").tenant.slug == "alice-eu"
    assert api.get(URL.format("eu-1")).status_code == 404
    assert api.get(URL.format("eu-1") + "?tenant=alice-eu").status_code == 200
    response = api.put(URL.format("x"), {"tenant": "stranger"}, format="json")
    assert response.status_code == 400 and "tenant" in response.json()["error"]["fields"]
