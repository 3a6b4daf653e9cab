import pytest

from apps.journeys.models import JourneyRun
from apps.journeys.tests.factories import active_journey, templates

WAIT = {"trigger": {"event": "order.placed"}, "reentry": {"rule": "every_time"}, "steps": [
    {"id": "paid", "type": "wait", "event": "order.paid", "timeout": "3d", "on_timeout": "nudge"},
    {"id": "nudge", "type": "send", "template": "nudge", "channels": ["email"]}]}


@pytest.fixture
def journey(tenant):
    templates(tenant, "nudge")
    return active_journey(tenant, WAIT)


def track(api, recipient, key):
    from apps.events.services import events_process

    response = api.post("/api/v1/events", {"name": "order.placed", "recipient": recipient,
                                           "cancellation_key": key}, format="json")
    assert response.status_code == 202
    events_process()


def test_cancel_by_key_ends_matching_runs_of_the_tenant_only(api, charlie_api, journey):
    track(api, "ada", "order-1")
    track(api, "bob", "order-1")
    track(api, "ada", "order-2")
    assert charlie_api.post("/api/v1/journeys/cancel", {"cancellation_key": "order-1"},
                            format="json").json() == {"cancelled": 0}
    response = api.post("/api/v1/journeys/cancel", {"cancellation_key": "order-1", "recipient": "ada"},
                        format="json")
    assert response.status_code == 200 and response.json() == {"cancelled": 1}
    assert api.post("/api/v1/journeys/cancel", {"cancellation_key": "order-1"},
                    format="json").json() == {"cancelled": 1}
    assert sorted(JourneyRun.objects.values_list("recipient__external_id", "cancellation_key", "status")) == [
        ("ada", "order-1", "cancelled"), ("ada", "order-2", "waiting"), ("bob", "order-1", "cancelled")]


def test_cancel_bad_input_names_the_field(api, journey):
    response = api.post("/api/v1/journeys/cancel", {"recipient": "ada"}, format="json")
    assert response.status_code == 400 and "cancellation_key" in response.json()["error"]["fields"]
    response = api.post("/api/v1/journeys/cancel", {"cancellation_key": ""}, format="json")
    assert response.status_code == 400 and "cancellation_key" in response.json()["error"]["fields"]
    response = api.post("/api/v1/journeys/cancel", {"cancellation_key": "k", "recipient": "nobody"},
                        format="json")
    assert response.status_code == 404
