import threading

import pytest
import requests

from apps.api import views as api_views
from apps.events.models import Event, IdempotencyKey
from apps.events.tests.factories import api_key_for
from apps.tenants.tests.factories import TenantFactory

EVENT = {"name": "order.completed", "recipient": "user-1"}


def post(api, body, key="key-1"):
    return api.post("/api/v1/events", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.mark.django_db
def test_a_retry_replays_the_first_response(api):
    first = post(api, EVENT)
    second = post(api, EVENT)
    assert first.status_code == second.status_code == 202
    assert second.json() == first.json()
    assert second["Idempotency-Replayed"] == "true" and "Idempotency-Replayed" not in first
    assert Event.objects.count() == 1


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_422(api):
    post(api, EVENT)
    response = post(api, {**EVENT, "name": "other"})
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["error"]["fields"]
    assert Event.objects.count() == 1


@pytest.mark.django_db
def test_keys_are_per_tenant(api, charlie_api):
    assert post(api, EVENT).status_code == 202
    assert post(charlie_api, {**EVENT, "name": "x"}).status_code == 202  # not a 422
    assert Event.objects.count() == 2


@pytest.mark.django_db
def test_a_failed_request_does_not_burn_the_key(api):
    assert post(api, {"recipient": "user-1"}).status_code == 400
    assert post(api, EVENT).status_code == 202  # corrected retry, same key
    assert not IdempotencyKey.objects.filter(response_status__isnull=True).exists()


@pytest.mark.django_db
def test_an_overlong_key_is_rejected(api):
    response = post(api, EVENT, key="k" * 256)
    assert response.status_code == 400 and "Idempotency-Key" in response.json()["error"]["fields"]


@pytest.mark.django_db
def test_batch_posts_are_idempotent_too(api):
    body = {"events": [EVENT, {**EVENT, "name": "b"}]}
    first = api.post("/api/v1/events/batch", body, format="json", HTTP_IDEMPOTENCY_KEY="b1")
    second = api.post("/api/v1/events/batch", body, format="json", HTTP_IDEMPOTENCY_KEY="b1")
    assert first.json() == second.json() and Event.objects.count() == 2


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_a_concurrent_retry_is_409_while_the_first_is_in_flight(live_server, monkeypatch):
    """Two real requests at once; the first is held after claiming its key until the second
    has been answered, so the interleaving is the same on every run."""
    headers = {"Authorization": f"Bearer {api_key_for(TenantFactory())}", "Idempotency-Key": "same"}
    url = f"{live_server.url}/api/v1/events"
    claimed, second_answered = threading.Event(), threading.Event()

    def hold_first(request):
        claimed.set()
        assert second_answered.wait(10)

    monkeypatch.setattr(api_views, "after_idempotency_claim", hold_first)
    first: dict = {}
    thread = threading.Thread(target=lambda: first.setdefault(
        "response", requests.post(url, json=EVENT, headers=headers, timeout=20)))
    thread.start()
    assert claimed.wait(10)
    second = requests.post(url, json=EVENT, headers=headers, timeout=20)
    second_answered.set()
    thread.join(20)

    assert second.status_code == 409
    assert second.json()["error"]["type"] == "conflict"
    assert first["response"].status_code == 202
    third = requests.post(url, json=EVENT, headers=headers, timeout=20)
    assert third.status_code == 202 and third.headers["Idempotency-Replayed"] == "true"
    assert third.json() == first["response"].json()
    assert Event.objects.count() == 1
