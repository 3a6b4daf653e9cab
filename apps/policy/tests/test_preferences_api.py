"""GET/PUT /api/v1/recipients/{external_id}/preferences and category checking on send."""

import pytest

from apps.messaging.models import Message
from apps.policy.models import Kind, Preference
from apps.policy.tests.factories import CategoryFactory
from apps.recipients.tests.factories import RecipientFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/recipients/ada/preferences"


@pytest.fixture
def recipient(tenant):
    CategoryFactory(tenant=tenant, key="security", name="Security", kind=Kind.TRANSACTIONAL, required=True,
                    default_priority="critical")
    CategoryFactory(tenant=tenant, key="marketing", name="Marketing", kind=Kind.COMMERCIAL,
                    channels_off=["sms"])
    return RecipientFactory(tenant=tenant, external_id="ada")


def test_get_shows_every_category_with_its_defaults(api, recipient):
    body = api.get(URL).json()
    assert body["categories"]["marketing"]["channels"]["email"] is True
    assert body["categories"]["marketing"]["channels"]["sms"] is False
    assert body["categories"]["security"]["required"] is True
    assert (body["quiet_hours"], body["commercial_unsubscribed"]) == (None, False)


def test_put_changes_preferences_and_get_reads_them_back(api, recipient):
    response = api.put(URL, {"categories": {"marketing": {"email": False, "sms": True}},
                             "quiet_hours": {"start": "22:00", "end": "07:30"},
                             "commercial_unsubscribed": True}, format="json")
    assert response.status_code == 200, response.json()
    stored = Preference.objects.get(recipient=recipient)
    assert stored.channels == {"marketing": {"email": False, "sms": True}}
    assert stored.commercial_unsubscribed_at is not None
    body = api.get(URL).json()
    assert body["categories"]["marketing"]["channels"]["sms"] is True
    assert body["quiet_hours"] == {"start": "22:00", "end": "07:30"}
    # fields not given stay; null quiet hours fall back to the tenant's
    api.put(URL, {"quiet_hours": None}, format="json")
    body = api.get(URL).json()
    assert body["quiet_hours"] is None and body["commercial_unsubscribed"] is True


def test_muting_a_required_category_is_refused_naming_it(api, recipient):
    response = api.put(URL, {"categories": {"security": {"email": False}}}, format="json")
    assert response.status_code == 400
    assert "security" in response.json()["error"]["fields"]["categories.security.email"][0]
    assert not Preference.objects.exists()


@pytest.mark.parametrize(("body", "field"), [
    ({"categories": {"nope": {"email": False}}}, "categories.nope"),
    ({"categories": {"marketing": {"fax": False}}}, "categories.marketing.fax"),
    ({"categories": {"marketing": {"email": "no"}}}, "categories.marketing.email"),
    ({"categories": ["marketing"]}, "categories"),
    ({"quiet_hours": {"start": "25:00", "end": "08:00"}}, "quiet_hours.start"),
    ({"quiet_hours": {"start": "08:00", "end": "08:00"}}, "quiet_hours.end"),
    ({"quiet_hours": "21-8"}, "quiet_hours"),
    ({"commercial_unsubscribed": "yes"}, "commercial_unsubscribed"),
])
def test_bad_input_is_a_400_naming_the_field(api, recipient, body, field):
    response = api.put(URL, body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_another_tenants_recipient_is_not_found(charlie_api, recipient):
    assert charlie_api.get(URL).status_code == 404
    assert charlie_api.put(URL, {"commercial_unsubscribed": True}, format="json").status_code == 404


def test_a_send_naming_an_unknown_category_is_refused(api, recipient):
    content = {"email": {"subject": "Hi", "text": "Hello"}}
    response = api.post("/api/v1/messages", {"recipient": "ada", "channel": "email", "category": "promo",
                                             "content": content}, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["category"]
    response = api.post("/api/v1/messages", {"recipient": "ada", "channel": "email", "category": "security",
                                             "content": content}, format="json")
    assert response.status_code == 202
    assert Message.objects.get(pk=response.json()["messages"][0]["id"]).priority == "critical"
