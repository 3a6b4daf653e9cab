"""GET /api/v1/templates, GET /api/v1/templates/{key}, POST /api/v1/templates/{key}/render."""

import pytest

from apps.content.tests.factories import TemplateFactory, TemplateLocaleFactory, published
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def template(tenant):
    template = TemplateFactory(tenant=tenant, key="receipt", name="Receipt", category="billing",
                               sms_text="Hi {{ recipient.first_name | default: 'you' }}: "
                                        "{{ data.total | money }}")
    TemplateLocaleFactory(template=template, locale="de", sms_text="Hallo {{ recipient.first_name }}")
    published(template)
    return template


def test_list_and_read(api, template, tenant):
    TemplateFactory(tenant=tenant, key="draft-only")
    body = api.get("/api/v1/templates").json()
    by_key = {t["key"]: t for t in body["templates"]}
    assert by_key["receipt"]["version"] == 1 and by_key["receipt"]["channels"] == ["email", "sms"]
    assert by_key["receipt"]["locales"] == ["de"] and by_key["draft-only"]["version"] is None
    detail = api.get("/api/v1/templates/receipt").json()
    assert detail["content"]["sms"]["text"].startswith("Hi {{ recipient.first_name")
    assert detail["locale_content"]["de"]["sms"]["text"] == "Hallo {{ recipient.first_name }}"


def test_render_with_given_data(api, template, tenant):
    RecipientFactory(tenant=tenant, external_id="user-1", locale="de-DE", attributes={"first_name": "Lise"})
    response = api.post("/api/v1/templates/receipt/render", {
        "recipient": {"attributes": {"first_name": "Ada"}}, "data": {"total": 9.5}, "channels": ["sms"]},
        format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {"key": "receipt", "version": 1, "locale": "",
                               "content": {"sms": {"text": "Hi Ada: 9.50"}}}
    body = api.post("/api/v1/templates/receipt/render", {"recipient": "user-1"}, format="json").json()
    assert body["locale"] == "de" and body["content"]["sms"] == {"text": "Hallo Lise"}
    assert "Hallo" not in body["content"]["email"]["html"]  # no German email: the template's own


def test_render_errors_name_the_field(api, template):
    cases = [
        ({"channels": ["fax"]}, "channels"), ({"channels": ["push"]}, "template"), ({"data": [1]}, "data"),
        ({"recipient": {"locale": "xx_YY_zz"}}, "recipient.locale"), ({"version": 7}, "version"),
        ({"recipient": 5}, "recipient"),
    ]
    for body, field in cases:
        response = api.post("/api/v1/templates/receipt/render", body, format="json")
        assert response.status_code == 400, body
        assert field in response.json()["error"]["fields"], (body, response.json())
    response = api.post("/api/v1/templates/receipt/render", {"recipient": "nobody"}, format="json")
    assert response.status_code == 404
    assert api.post("/api/v1/templates/nope/render", {}, format="json").status_code == 404


def test_another_tenants_templates_are_not_found(charlie_api, template):
    assert charlie_api.get("/api/v1/templates").json() == {"templates": []}
    assert charlie_api.get("/api/v1/templates/receipt").status_code == 404
    assert charlie_api.post("/api/v1/templates/receipt/render", {}, format="json").status_code == 404


def test_a_sub_tenant_sees_inherited_templates(api, template, tenant):
    TenantFactory(slug="alice-eu", parent=tenant)
    body = api.get("/api/v1/templates", {"tenant": "alice-eu"}).json()
    assert [t["key"] for t in body["templates"]] == ["receipt"]


def test_publishing_is_not_in_the_api(api, template):
    assert api.post("/api/v1/templates/receipt", {}, format="json").status_code == 405
    assert api.post("/api/v1/templates/receipt/publish", {}, format="json").status_code == 404
