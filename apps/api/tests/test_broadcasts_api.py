import pytest

from apps.broadcasts import services
from apps.broadcasts.tests.factories import many_recipients, published_template, segment_with
from apps.content.tests.factories import TemplateFactory
from apps.delivery.models import ProviderConfig
from apps.messaging import pipeline
from apps.messaging.models import Message

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def setup(tenant):
    ProviderConfig.objects.create(tenant=tenant, name="log", channel="email", kind="log")
    published_template(tenant, key="news")
    segment_with(tenant, many_recipients(tenant, 5), key="everyone")


def create(api, body, **headers):
    return api.post("/api/v1/broadcasts", body, format="json", **headers)


def test_broadcast_to_a_segment_then_follow_its_progress(api):
    response = create(api, {"template": "news", "segment": "everyone", "channels": ["email"]})
    assert response.status_code == 202
    body = response.json()
    assert (body["status"], body["targeted"], body["segment"], body["channels"]) == (
        "sending", 5, "everyone", ["email"])
    services.broadcast_fan_out(broadcast_id=body["id"])
    pipeline.messages_send(message_ids=list(Message.objects.filter(broadcast_id=body["id"])
                                            .values_list("id", flat=True)))
    from django.core.cache import cache
    cache.clear()
    progress = api.get(f"/api/v1/broadcasts/{body['id']}").json()
    assert (progress["created"], progress["sent"], progress["queued"], progress["percent"]) == (5, 5, 0, 100)


def test_recipients_by_external_id_and_unknown_ones_are_named(api, tenant):
    response = create(api, {"template": "news", "recipients": ["u1", "ghost", "u3"]})
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert fields["recipients.1"] == ["No recipient has the external id 'ghost'."]
    response = create(api, {"template": "news", "recipients": ["u1", "u3"]})
    assert (response.status_code, response.json()["targeted"]) == (202, 2)


@pytest.mark.parametrize(("body", "field"), [
    ({"template": "news", "segment": "nope"}, "segment"),
    ({"template": "news"}, "segment"),
    ({"template": "news", "segment": "everyone", "recipients": ["u1"]}, "segment"),
    ({"template": "unknown", "segment": "everyone"}, "template"),
    ({"template": "draft", "segment": "everyone"}, "template"),
    ({"segment": "everyone"}, "template"),
    ({"template": "news", "recipients": "u1"}, "recipients"),
    ({"template": "news", "recipients": [f"u{n}" for n in range(10_001)]}, "recipients"),
    ({"template": "news", "recipients": ["u1", 7]}, "recipients.1"),
    ({"template": "news", "segment": "everyone", "send_at": "tomorrow"}, "send_at"),
    ({"template": "news", "segment": "everyone", "local_time": True}, "send_at"),
    ({"template": "news", "segment": "everyone", "local_time": "yes"}, "local_time"),
    ({"template": "news", "segment": "everyone", "channels": ["fax"]}, "channels"),
    ({"template": "news", "segment": "everyone", "category": "nope"}, "category"),
    ({"template": "news", "segment": "everyone", "priority": "urgent"}, "priority"),
])
def test_bad_input_is_a_400_naming_the_field(api, tenant, body, field):
    TemplateFactory(tenant=tenant, key="draft")  # never published
    from apps.policy.tests.factories import CategoryFactory
    CategoryFactory(tenant=tenant, key="general")  # the tenant now has categories: others are unknown
    response = create(api, body)
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["fields"]
    assert not Message.objects.exists()


def test_cancel_pause_resume_and_conflicts(api):
    broadcast_id = create(api, {"template": "news", "segment": "everyone"}).json()["id"]
    services.broadcast_fan_out(broadcast_id=broadcast_id)
    assert api.post(f"/api/v1/broadcasts/{broadcast_id}/pause").json()["status"] == "paused"
    assert api.post(f"/api/v1/broadcasts/{broadcast_id}/pause").status_code == 409
    assert api.post(f"/api/v1/broadcasts/{broadcast_id}/resume").json()["status"] == "sending"
    response = api.post(f"/api/v1/broadcasts/{broadcast_id}/cancel")
    assert (response.status_code, response.json()["status"]) == (200, "cancelled")
    assert set(Message.objects.filter(broadcast_id=broadcast_id).values_list("status", flat=True)) == {
        "cancelled"}
    assert api.post(f"/api/v1/broadcasts/{broadcast_id}/cancel").status_code == 409


def test_another_tenants_broadcast_is_a_404(api, charlie_api):
    broadcast_id = create(api, {"template": "news", "segment": "everyone"}).json()["id"]
    assert charlie_api.get(f"/api/v1/broadcasts/{broadcast_id}").status_code == 404
    assert charlie_api.post(f"/api/v1/broadcasts/{broadcast_id}/cancel").status_code == 404
    assert charlie_api.post("/api/v1/broadcasts", {"template": "news", "segment": "everyone"},
                            format="json").status_code == 400


def test_an_idempotent_retry_creates_one_broadcast(api):
    first = create(api, {"template": "news", "segment": "everyone"}, HTTP_IDEMPOTENCY_KEY="bc-1")
    again = create(api, {"template": "news", "segment": "everyone"}, HTTP_IDEMPOTENCY_KEY="bc-1")
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["Idempotency-Replayed"] == "true"
