import pytest
from django.urls import reverse

from apps.delivery.models import ProviderConfig
from apps.messaging import pipeline, services
from apps.messaging.models import Message
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.models import Role
from apps.tenants.tests.factories import TenantFactory, staff_member

pytestmark = pytest.mark.django_db


def test_support_sees_a_recipients_messages_and_each_messages_trace(client):
    tenant = TenantFactory()
    ProviderConfig.objects.create(tenant=tenant, name="Log mail", channel="email", kind="log")
    recipient = RecipientFactory(tenant=tenant, email="ada@example.com")
    message = services.message_create(message=Message(
        tenant=tenant, recipient=recipient, channels=["email"], category="billing", dedupe_key="t1",
        content={"email": {"subject": "Receipt", "text": "Thanks"}}))
    pipeline.message_send(message_id=message.pk)
    client.force_login(staff_member(tenant=tenant, role=Role.SUPPORT))

    page = client.get(reverse("admin:recipients_recipient_change", args=[recipient.pk])).content.decode()
    assert f"#{message.pk}" in page and "billing" in page and "sent" in page
    page = client.get(reverse("admin:messaging_message_change", args=[message.pk]))
    body = page.content.decode()
    assert page.status_code == 200 and 'name="_save"' not in body
    for expected in ("claimed", "accepted_by_provider", "Log mail", "ada@example.com"):
        assert expected in body
    client.force_login(staff_member(tenant=TenantFactory(), role=Role.SUPPORT))
    response = client.get(reverse("admin:messaging_message_change", args=[message.pk]))
    assert response.status_code == 302 and response.url == reverse("admin:index")  # not found


def test_provider_credentials_are_encrypted_and_never_shown_again(client):
    tenant = TenantFactory()
    client.force_login(staff_member(tenant=tenant, role=Role.TENANT_ADMIN))
    response = client.post(reverse("admin:delivery_providerconfig_add"), {
        "tenant": tenant.pk, "name": "SMTP", "channel": "email", "kind": "log", "position": 0,
        "enabled": "on", "settings": "{}", "credentials": '{"password": "hunter2-secret"}'})
    assert response.status_code == 302, response.context["adminform"].form.errors
    config = ProviderConfig.objects.get(name="SMTP")
    assert "hunter2-secret" not in config.credentials_encrypted
    assert config.credentials == {"password": "hunter2-secret"}
    page = client.get(reverse("admin:delivery_providerconfig_change", args=[config.pk]))
    assert "hunter2-secret" not in page.content.decode()
    # Saving without new credentials keeps the old ones.
    client.post(reverse("admin:delivery_providerconfig_change", args=[config.pk]), {
        "tenant": tenant.pk, "name": "SMTP", "channel": "email", "kind": "log", "position": 1,
        "enabled": "on", "settings": "{}", "credentials": ""})
    config.refresh_from_db()
    assert config.position == 1 and config.credentials == {"password": "hunter2-secret"}
