"""Provider configs in the admin: each mistake is a form error on the field at fault, never a 500."""

import pytest
from django.urls import reverse

from apps.delivery.models import ProviderConfig
from apps.tenants.models import Role
from apps.tenants.tests.factories import TenantFactory, staff_member
from tests.fixtures.servers import postmark

pytestmark = pytest.mark.django_db

ADD = reverse("admin:delivery_providerconfig_add")


@pytest.fixture
def tenant():
    return TenantFactory()


@pytest.fixture
def admin_client(client, tenant):
    client.force_login(staff_member(tenant=tenant, role=Role.TENANT_ADMIN))
    return client


def form(tenant, **fields):
    return {"tenant": tenant.pk, "name": "Mail", "channel": "email", "kind": "sendgrid", "position": 0,
            "enabled": "on", "from_email": "hello@acme.example", "from_name": "Acme",
            "settings": '{"api_url": "https://api.sendgrid.com/v3/"}',
            "credentials": '{"api_key": "SG.secret-key"}', **fields}


def errors(response) -> dict[str, list[str]]:
    assert response.status_code == 200, "the form was accepted"
    return response.context["adminform"].form.errors


@pytest.mark.parametrize("fields, field, expected", [
    ({"settings": '{"api_url": "ftp://api.sendgrid.com/"}'}, "settings", "api_url must be an http(s) URL"),
    ({"settings": '{"api_url": 42}'}, "settings", "api_url must be an http(s) URL"),
    ({"credentials": ""}, "credentials", "sendgrid needs api_key"),
    ({"credentials": '{"api_key": "  "}'}, "credentials", "sendgrid needs api_key"),
    ({"kind": "postmark", "credentials": '{"api_key": "x"}'}, "credentials", "postmark needs server_token"),
    ({"kind": "anymail", "settings": '{"esp": "nosuchesp"}'}, "settings", "must name one of anymail's"),
    ({"kind": "anymail", "settings": '{"esp": "amazon_ses"}'}, "settings", "must name one of anymail's"),
    ({"kind": "anymail", "settings": '{"esp": "postal"}'}, "settings", "postal is misconfigured"),
    ({"from_email": ""}, "from_email", "Required"),
    ({"settings": '{"idna_encoder": "os.system"}'}, "settings", "Unknown settings idna_encoder"),
    ({"settings": '{"timeout": "soon"}'}, "settings", "timeout must be a number"),
    ({"settings": '["api_url"]'}, "settings", "A JSON object"),
    ({"channel": "sms"}, "channel", "cannot send sms"),
])
def test_mistakes_are_named_on_their_field(admin_client, tenant, fields, field, expected):
    response = admin_client.post(ADD, form(tenant, **fields))
    assert any(expected in message for message in errors(response)[field]), errors(response)
    assert not ProviderConfig.objects.exists()


def test_a_valid_esp_config_is_saved_and_kept_valid_without_retyping_its_credentials(admin_client, tenant):
    response = admin_client.post(ADD, form(tenant, kind="anymail", settings='{"esp": "mailgun"}'))
    assert response.status_code == 302, errors(response)
    config = ProviderConfig.objects.get()
    assert config.credentials == {"api_key": "SG.secret-key"}
    change = reverse("admin:delivery_providerconfig_change", args=[config.pk])
    assert "SG.secret-key" not in admin_client.get(change).content.decode()
    settings = '{"esp": "mailgun", "sender_domain": "mg.acme.example"}'
    response = admin_client.post(change, form(tenant, kind="anymail", credentials="", position=2,
                                              settings=settings))
    assert response.status_code == 302, errors(response)
    config.refresh_from_db()
    assert (config.position, config.credentials) == (2, {"api_key": "SG.secret-key"})


def test_empty_settings_are_no_settings(admin_client, tenant):
    response = admin_client.post(ADD, form(tenant, kind="log", settings="", credentials=""))
    assert response.status_code == 302, errors(response)
    assert ProviderConfig.objects.get().settings == {}


def test_the_test_connection_action_asks_the_esp(admin_client, tenant, http_server):
    http_server.default = postmark
    config = ProviderConfig(tenant=tenant, name="Postmark", channel="email", kind="postmark",
                            from_email="hello@acme.example", settings={"api_url": http_server.url})
    config.set_credentials({"server_token": "pm-token"})
    config.save()
    response = admin_client.post(reverse("admin:delivery_providerconfig_changelist"), {
        "action": "test_connection", "_selected_action": [config.pk]}, follow=True)
    [message] = [str(m) for m in response.context["messages"]]
    assert message == "Postmark (postmark, email): postmark: credentials accepted by 127.0.0.1"
    assert [(r.method, r.path) for r in http_server.requests] == [("GET", "/server")]
