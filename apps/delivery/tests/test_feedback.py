"""Providers' webhooks: bounces, complaints and unsubscribes fill the suppression list; deliveries
and bounces move the message (payloads as Postmark, SendGrid, Mailgun and Resend send them, from
their docs and django-anymail's tests)."""

import base64
import hashlib
import hmac
import json
import time
import uuid

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.urls import reverse

from apps.delivery.models import ProviderConfig
from apps.delivery.tests.test_esp import email_message, esp_config, servers  # noqa: F401 (a fixture)
from apps.messaging import pipeline
from apps.messaging.models import Message
from apps.messaging.services import message_create
from apps.policy.models import SuppressedAddress
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.models import Role
from apps.tenants.tests.factories import TenantFactory, staff_member
from tests.fixtures.servers import postmark, sendgrid

pytestmark = pytest.mark.django_db


def sent_by(config, server) -> Message:
    message = email_message(config.tenant)
    pipeline.message_send(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == "sent" and message.provider_message_id
    return message


def post(client, config, body, **headers):
    return client.post(config.webhook_url(), data=body if isinstance(body, bytes | str) else json.dumps(body),
                       content_type="application/json", headers=headers)


def postmark_bounce(message_id, bounce_type="HardBounce", email="ada@example.com", event_id=901542550):
    return {"RecordType": "Bounce", "ID": event_id, "Type": bounce_type, "TypeCode": 1, "ServerID": 23,
            "Name": "Hard bounce", "MessageID": message_id,
            "Description": "The server was unable to deliver your message "
                           "(ex: unknown user, mailbox not found).",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
            "Email": email, "From": "hello@acme.example", "BouncedAt": "2026-04-27T16:28:50.3963933-04:00",
            "DumpAvailable": True, "Inactive": True, "CanActivate": True, "Subject": "Your receipt"}


@pytest.fixture
def postmark_config(servers):  # noqa: F811
    server = servers(postmark)
    return esp_config(TenantFactory(), "postmark", server.url), server


def test_a_postmark_hard_bounce_bounces_the_message_and_suppresses_the_address(client, postmark_config):
    config, server = postmark_config
    message = sent_by(config, server)
    response = post(client, config, postmark_bounce(message.provider_message_id))
    assert response.status_code == 200
    assert response.json() == {"received": 1, "matched": 1, "suppressed": 1}
    message.refresh_from_db()
    assert message.status == "bounced"
    entry = message.timeline.last()
    assert (entry.status, entry.reason_code) == ("bounced", "provider_bounced")
    assert entry.reason.startswith("bounced: The server was unable to deliver your message")
    assert entry.reason.endswith("(reported by postmark)")
    listed = SuppressedAddress.objects.get()
    assert (listed.tenant_id, listed.channel, listed.address, listed.source) == (
        config.tenant_id, "email", "ada@example.com", "bounce")
    # The next message to that address is not sent: the list is policy's first check.
    again = email_message(config.tenant)
    pipeline.message_send(message_id=again.pk)
    again.refresh_from_db()
    assert again.status == "suppressed"
    assert "the email address is on the suppression list" in again.timeline.last().reason


def test_a_soft_bounce_is_noted_but_does_not_suppress(client, postmark_config):
    config, server = postmark_config
    message = sent_by(config, server)
    response = post(client, config, postmark_bounce(message.provider_message_id, bounce_type="SoftBounce"))
    assert response.json() == {"received": 1, "matched": 1, "suppressed": 0}
    message.refresh_from_db()
    assert message.status == "sent"
    assert message.timeline.last().reason_code == "provider_soft_bounced"
    assert not SuppressedAddress.objects.exists()


def test_delivery_then_a_spam_complaint(client, postmark_config):
    config, server = postmark_config
    message = sent_by(config, server)
    delivered = {"RecordType": "Delivery", "ServerID": 23, "MessageID": message.provider_message_id,
                 "Recipient": "ada@example.com", "Tag": "welcome-email", "Metadata": {},
                 "DeliveredAt": "2026-08-01T13:28:10.2735393-04:00",
                 "Details": "Test delivery webhook details"}
    assert post(client, config, delivered).status_code == 200
    message.refresh_from_db()
    assert message.status == "delivered"
    complaint = {"RecordType": "SpamComplaint", "ID": 901542551, "Type": "SpamComplaint", "TypeCode": 512,
                 "Name": "Spam complaint", "MessageID": message.provider_message_id, "ServerID": 1234,
                 "Description": "", "Details": "Test spam complaint details", "Email": "ADA@example.com",
                 "From": "hello@acme.example", "BouncedAt": "2026-08-01T16:28:50.3963933-04:00",
                 "DumpAvailable": True, "Inactive": True, "CanActivate": False, "Subject": "Your receipt"}
    assert post(client, config, complaint).json()["suppressed"] == 1
    message.refresh_from_db()
    assert message.status == "delivered"  # a complaint is a note: the message did arrive
    assert message.timeline.last().reason_code == "provider_complained"
    listed = SuppressedAddress.objects.get()
    assert (listed.address, listed.source) == ("ada@example.com", "complaint")


def test_an_unsubscribe_at_the_esp_goes_on_the_list(client, postmark_config):
    config, server = postmark_config
    message = sent_by(config, server)
    change = {"RecordType": "SubscriptionChange", "MessageID": message.provider_message_id, "ServerID": 23,
              "MessageStream": "outbound", "ChangedAt": "2026-06-05T17:17:32Z",
              "Recipient": "ada@example.com",
              "Origin": "Recipient", "SuppressSending": True, "SuppressionReason": "ManualSuppression",
              "Tag": "welcome-email", "Metadata": {}}
    assert post(client, config, change).json() == {"received": 1, "matched": 1, "suppressed": 1}
    assert SuppressedAddress.objects.get().source == "unsubscribe"


def test_a_report_sent_again_changes_nothing(client, postmark_config):
    config, server = postmark_config
    message = sent_by(config, server)
    for _ in range(2):
        assert post(client, config, postmark_bounce(message.provider_message_id)).status_code == 200
    assert message.timeline.filter(reason_code="provider_bounced").count() == 1
    assert SuppressedAddress.objects.count() == 1


def test_a_bounce_for_an_unknown_message_still_suppresses_for_the_configs_tenant(client, postmark_config):
    config, _ = postmark_config
    response = post(client, config, postmark_bounce(str(uuid.uuid4()), email="gone@example.com"))
    assert response.json() == {"received": 1, "matched": 0, "suppressed": 1}
    assert SuppressedAddress.objects.get().tenant_id == config.tenant_id


def sendgrid_events(anymail_id, smtp_id):
    base = {"email": "ada@example.com", "timestamp": 1461095250, "anymail_id": anymail_id, "smtp-id": smtp_id,
            "sg_message_id": "wrfRRvF7Q0GgwUo2CvDmEA.filter0425p1mdw1.13037.57168B4A1D.0"}
    return [
        {**base, "event": "processed", "sg_event_id": "e-processed"},
        {**base, "event": "delivered", "sg_event_id": "e-delivered", "ip": "167.89.17.173", "tls": 1,
         "response": "250 2.0.0 OK 1461095248 m143si2210036ioe.159 - gsmtp "},
        {**base, "event": "open", "sg_event_id": "e-open", "useragent": "Mozilla/5.0"},
        {**base, "event": "bounce", "sg_event_id": "e-blocked", "type": "blocked", "status": "4.0.0",
         "reason": "451 4.7.1 Greylisted, try again later"},
        {**base, "event": "bounce", "sg_event_id": "e-bounce", "type": "bounce", "status": "5.1.1",
         "reason": "550 5.1.1 The email account that you tried to reach does not exist."},
    ]


def test_sendgrids_batch_is_read_event_by_event(client, servers):  # noqa: F811
    server = servers(sendgrid)
    config = esp_config(TenantFactory(), "sendgrid", server.url)
    message = sent_by(config, server)
    response = post(client, config, sendgrid_events(message.provider_message_id, "<x@sendgrid.net>"))
    assert response.json() == {"received": 5, "matched": 3, "suppressed": 1}  # open, processed: nothing
    message.refresh_from_db()
    assert message.status == "bounced"
    codes = list(message.timeline.values_list("status", "reason_code"))[-3:]
    assert codes == [("delivered", "provider_delivered"), ("delivered", "provider_soft_bounced"),
                     ("bounced", "provider_bounced")]
    assert SuppressedAddress.objects.get().source == "bounce"


def test_a_message_is_also_found_by_our_own_message_id(client, servers):  # noqa: F811
    server = servers(sendgrid)
    config = esp_config(TenantFactory(), "sendgrid", server.url)
    message = sent_by(config, server)
    dropped = {"email": "ada@example.com", "timestamp": 1461095250, "event": "dropped",
               "smtp-id": f"<msg-{message.pk}@acme.example>", "sg_event_id": "e-dropped",
               "reason": "Bounced Address"}  # SendGrid refuses it: it bounced before
    assert post(client, config, [dropped]).json() == {"received": 1, "matched": 1, "suppressed": 1}
    message.refresh_from_db()
    assert message.status == "bounced"


def test_sendgrids_signature_is_checked_when_its_key_is_in_the_credentials(client, servers):  # noqa: F811
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    key = "".join(public.strip().splitlines()[1:-1])
    server = servers(sendgrid)
    config = esp_config(TenantFactory(), "sendgrid", server.url)
    config.set_credentials({"api_key": "SG.test-key", "tracking_webhook_verification_key": key})
    config.save()
    message = sent_by(config, server)
    body = json.dumps(sendgrid_events(message.provider_message_id, "<x@sendgrid.net>")[1:2]).encode()
    timestamp = str(int(time.time()))
    signature = base64.b64encode(private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    late = str(int(timestamp) + 1)  # not what was signed
    forged = post(client, config, body, **{"X-Twilio-Email-Event-Webhook-Signature": signature,
                                            "X-Twilio-Email-Event-Webhook-Timestamp": late})
    assert forged.status_code == 400
    assert "signature" in forged.json()["error"]["fields"]
    signed = post(client, config, body, **{"X-Twilio-Email-Event-Webhook-Signature": signature,
                                            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp})
    assert signed.status_code == 200
    message.refresh_from_db()
    assert message.status == "delivered"


@pytest.fixture
def log_config():
    tenant = TenantFactory()
    return ProviderConfig.objects.create(tenant=tenant, name="relay", channel="email", kind="log")


def logged(config) -> Message:
    message = message_create(message=Message(
        tenant=config.tenant, recipient=RecipientFactory(tenant=config.tenant, email="bo@example.com"),
        channels=["email"], content={"email": {"subject": "Hi", "text": "Hello"}},
        dedupe_key=f"t:{uuid.uuid4()}"))
    pipeline.message_send(message_id=message.pk)
    message.refresh_from_db()
    return message


def test_the_native_format_for_other_providers(client, log_config):
    message = logged(log_config)
    body = {"events": [
        {"type": "delivered", "message_id": f"msg-{message.pk}", "id": "n-1",
         "occurred_at": "2026-11-24T10:00:00+01:00"},
        {"type": "complained", "message_id": f"<msg-{message.pk}@acme.example>", "reason": "abuse report"},
        {"type": "bounced", "address": "Someone@Example.com", "reason": "550 no such user"},
    ]}
    assert post(client, log_config, body).json() == {"received": 3, "matched": 2, "suppressed": 2}
    message.refresh_from_db()
    assert message.status == "delivered"
    assert message.timeline.last().reason == "spam complaint: abuse report (reported by relay)"
    assert set(SuppressedAddress.objects.values_list("address", "source")) == {
        ("bo@example.com", "complaint"), ("someone@example.com", "bounce")}


@pytest.mark.parametrize("body, field", [
    (b"not json", "body"),
    ({"event": []}, "events"),
    ({"events": ["x"]}, "events[0]"),
    ({"events": [{"type": "exploded", "message_id": "msg-1"}]}, "events[0].type"),
    ({"events": [{"type": "bounced"}]}, "events[0].message_id"),
    ({"events": [{"type": "bounced", "address": 7}]}, "events[0].address"),
    ({"events": [{"type": "bounced", "address": "a@b.c", "occurred_at": "yesterday"}]},
     "events[0].occurred_at"),
])
def test_a_native_payload_we_cannot_read_is_a_400_naming_the_problem(client, log_config, body, field):
    response = post(client, log_config, body)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"RecordType": "Inbound"}', b'"text"'])
def test_an_esp_payload_we_cannot_read_is_a_400(client, postmark_config, body):
    config, _ = postmark_config
    response = post(client, config, body)
    assert response.status_code == 400
    assert response.json()["error"]["fields"].keys() == {"body"}


@pytest.mark.parametrize("body", [b"not json", b"[{}]", b'[{"event": "bounce", "timestamp": "x"}]', b"[1]"])
def test_a_sendgrid_payload_we_cannot_read_is_a_400(client, servers, body):  # noqa: F811
    config = esp_config(TenantFactory(), "sendgrid", servers(sendgrid).url)
    response = post(client, config, body)
    assert response.status_code == 400
    assert response.json()["error"]["fields"].keys() == {"body"}


def test_a_wrong_secret_or_unknown_config_is_a_404(client, log_config):
    message = logged(log_config)
    body = {"events": [{"type": "bounced", "message_id": f"msg-{message.pk}"}]}
    wrong = reverse("provider-webhook", args=[log_config.public_id, "x" * 43])
    unknown = reverse("provider-webhook", args=[uuid.uuid4(), log_config.webhook_secret])
    for url in (wrong, unknown):
        response = client.post(url, data=json.dumps(body), content_type="application/json")
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "not_found"
    message.refresh_from_db()
    assert message.status == "sent"


def test_another_tenants_messages_are_out_of_reach(client, log_config):
    charlie = ProviderConfig.objects.create(tenant=TenantFactory(), name="other", channel="email", kind="log")
    message = logged(charlie)
    body = {"events": [{"type": "bounced", "message_id": f"msg-{message.pk}", "address": "x@example.com"}]}
    assert post(client, log_config, body).json()["matched"] == 0
    message.refresh_from_db()
    assert message.status == "sent"
    assert SuppressedAddress.objects.get().tenant_id == log_config.tenant_id


def test_each_config_has_its_own_url_shown_in_the_admin(client, log_config):
    other = ProviderConfig.objects.create(tenant=log_config.tenant, name="other", channel="sms", kind="log")
    assert other.public_id != log_config.public_id and other.webhook_secret != log_config.webhook_secret
    client.force_login(staff_member(tenant=log_config.tenant, role=Role.TENANT_ADMIN))
    page = client.get(reverse("admin:delivery_providerconfig_change", args=[log_config.pk]))
    assert page.status_code == 200
    assert log_config.webhook_url() in page.content.decode()
    assert log_config.webhook_url().startswith("http://localhost:8000/webhooks/providers/")


def test_an_esp_that_always_signs_needs_its_key_in_the_credentials(client):
    config = ProviderConfig(tenant=TenantFactory(), name="postal", channel="email", kind="anymail",
                            settings={"esp": "postal"}, from_email="hello@acme.example")
    config.set_credentials({"api_key": "k"})
    config.save()
    response = post(client, config, {"event": "MessageBounced", "payload": {}})
    assert response.status_code == 400
    assert "webhook_key" in response.json()["error"]["fields"]["credentials"][0]


def esp_webhook_config(esp: str, credentials: dict) -> ProviderConfig:
    config = ProviderConfig(tenant=TenantFactory(), name=esp, channel="email", kind="anymail",
                            settings={"esp": esp}, from_email="hello@acme.example")
    config.set_credentials(credentials)
    config.save()
    return config


def sent_in_test_mode(tenant) -> Message:
    message = message_create(message=Message(
        tenant=tenant, recipient=RecipientFactory(tenant=tenant, email="ada@example.com"),
        channels=["email"], content={"email": {"subject": "Hi", "text": "Hello"}},
        dedupe_key=f"t:{uuid.uuid4()}", test_mode=True))
    pipeline.message_send(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == "sent"
    return message


def mailgun_failed(message_id: str, key: str, *, tamper: bool = False) -> dict:
    """A Mailgun permanent failure as its webhooks send it, signed with `key`."""
    timestamp, token = str(int(time.time())), uuid.uuid4().hex
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": timestamp, "token": token,
                          "signature": ("0" * 64) if tamper else signature},
            "event-data": {"event": "failed", "severity": "permanent", "recipient": "ada@example.com",
                           "timestamp": float(timestamp), "id": "Ase7i2zsRYeDXztHGENqRA",
                           "message": {"headers": {"message-id": message_id}},
                           "delivery-status": {
                               "code": 550, "message": "5.1.1 No such user",
                               "description": "Not delivering to previously bounced address"}}}


def test_a_signed_mailgun_failure_bounces_the_message_and_a_forged_one_is_refused(client):
    config = esp_webhook_config("mailgun", {"api_key": "key-1", "webhook_signing_key": "signing-key"})
    message = sent_in_test_mode(config.tenant)
    our_id = f"msg-{message.pk}@acme.example"
    forged = post(client, config, mailgun_failed(our_id, "signing-key", tamper=True))
    assert forged.status_code == 400 and "signature" in forged.json()["error"]["fields"]
    assert not SuppressedAddress.objects.exists()

    response = post(client, config, mailgun_failed(our_id, "signing-key"))
    assert response.json() == {"received": 1, "matched": 1, "suppressed": 1}
    message.refresh_from_db()
    assert message.status == "bounced"
    assert message.timeline.last().reason.startswith("bounced: Not delivering to previously bounced address")


def svix_headers(secret: str, body: bytes, *, event_id: str = "msg_2Kzq") -> dict:
    """Svix's signature (Resend's webhooks): HMAC-SHA256 of id.timestamp.body, base64."""
    timestamp = str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {"svix-id": event_id, "svix-timestamp": timestamp,
            "svix-signature": "v1," + base64.b64encode(mac).decode()}


def test_a_signed_resend_bounce_suppresses_the_address_and_a_forged_one_is_refused(client):
    secret = "whsec_" + base64.b64encode(b"resend-signing-secret-32-bytes!!").decode()
    config = esp_webhook_config("resend", {"api_key": "re_1", "signing_secret": secret})
    body = json.dumps({"type": "email.bounced", "created_at": "2026-11-25T02:00:00.000Z",
                       "data": {"email_id": "4ef9a417-02e9-4d39-ad75-9611e0fcc33c", "to": ["ada@example.com"],
                                "bounce": {"message": "The recipient's email provider sent a hard bounce "
                                                      "message.", "type": "Permanent"}}}).encode()
    forged = post(client, config, body, **{**svix_headers(secret, body), "svix-id": "msg_other"})
    assert forged.status_code == 400 and "signature" in forged.json()["error"]["fields"]

    response = post(client, config, body, **svix_headers(secret, body))
    assert response.json() == {"received": 1, "matched": 0, "suppressed": 1}
    listed = SuppressedAddress.objects.get()
    assert (listed.tenant_id, listed.address, listed.source) == (
        config.tenant_id, "ada@example.com", "bounce")
