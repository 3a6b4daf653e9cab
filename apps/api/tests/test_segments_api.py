import pytest

from apps.recipients.tests.factories import RecipientFactory
from apps.segments import services
from apps.segments.models import Segment

pytestmark = pytest.mark.django_db
PRO = {"field": "recipient.attributes.plan", "op": "eq", "value": "pro"}


@pytest.fixture
def segment(tenant):
    RecipientFactory(tenant=tenant, attributes={"plan": "pro"})
    RecipientFactory(tenant=tenant, attributes={"plan": "free"})
    segment = services.segment_save(segment=Segment(tenant=tenant, key="pro-users", name="Pro users",
                                                    conditions=PRO))
    services.segment_recompute(segment)
    return segment


def test_list_and_read(api, segment):
    listed = api.get("/api/v1/segments").json()["segments"]
    assert [(s["key"], s["size"], s["status"]) for s in listed] == [("pro-users", 1, "ready")]
    detail = api.get("/api/v1/segments/pro-users").json()
    assert detail["conditions"] == PRO and detail["progress"] == {"done": 2, "total": 2}


def test_another_tenants_segments_are_not_found(charlie_api, segment):
    assert charlie_api.get("/api/v1/segments").json() == {"segments": []}
    response = charlie_api.get("/api/v1/segments/pro-users")
    assert response.status_code == 404 and response.json()["error"]["type"] == "not_found"
