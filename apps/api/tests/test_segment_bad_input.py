"""Every bad Segment request gets its documented 4xx and writes nothing."""

import base64
import gzip
import json

import pytest
from django.test import Client

from apps.events.models import Event
from apps.events.tests.factories import api_key_for
from apps.recipients.models import Recipient
from apps.tenants.models import ApiKey

pytestmark = pytest.mark.django_db


@pytest.fixture
def write_key(tenant):
    return api_key_for(tenant, kind=ApiKey.Kind.WRITE)


def send(write_key, body, url="/v1/batch", *, auth=True, **headers):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    if auth:
        headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    content_type = headers.pop("content_type", "application/json")
    return Client().generic("POST", url, raw, content_type=content_type, **headers)


TRACK = {"type": "track", "event": "Signed Up", "userId": "u1"}
BIG = "x" * (33 * 1024)


@pytest.mark.parametrize("case,body,kwargs,status,field", [
    ("missing event", {"batch": [{"type": "track", "userId": "u1"}]}, {}, 400, "batch[0].event"),
    ("wrong type of event", {"batch": [{**TRACK, "event": {"a": 1}}]}, {}, 400, "batch[0].event"),
    ("no user", {"batch": [{"type": "track", "event": "x"}]}, {}, 400, "batch[0].userId"),
    ("unknown type", {"batch": [{**TRACK, "type": "shout"}]}, {}, 400, "batch[0].type"),
    ("properties not an object", {"batch": [{**TRACK, "properties": "x"}]}, {}, 400,
     "batch[0].properties"),
    ("batch not a list", {"batch": {"a": 1}}, {}, 400, "batch"),
    ("oversize event in a batch", {"batch": [{**TRACK, "properties": {"blob": BIG}}]}, {}, 400, "batch[0]"),
    ("oversize batch", {"batch": [{**TRACK, "properties": {"blob": "x" * 30_000}}] * 18}, {}, 400, "batch"),
    ("oversize single call", {**TRACK, "properties": {"blob": BIG}}, {"url": "/v1/track"}, 400, "body"),
    ("alias without previousId", {"userId": "u1"}, {"url": "/v1/alias"}, 400, "previousId"),
    ("bad timestamp", {"batch": [{**TRACK, "timestamp": "soon"}]}, {}, 400, "batch[0].timestamp"),
])
def test_invalid_calls_name_the_field(write_key, case, body, kwargs, status, field):
    response = send(write_key, body, **kwargs)
    assert response.status_code == status, response.content
    assert field in response.json()["error"]["fields"], response.json()
    assert not Event.objects.exists() and not Recipient.objects.exists()


@pytest.mark.parametrize("case,raw,kwargs,status,error_type", [
    ("malformed json", b'{"batch": [', {}, 400, "malformed_json"),
    ("not utf-8", b'{"batch": "\xff"}', {}, 400, "malformed_json"),
    ("invalid gzip", b"definitely not gzip", {"HTTP_CONTENT_ENCODING": "gzip"}, 400, "invalid_gzip"),
    ("wrong content type", b"batch=1", {"content_type": "application/x-www-form-urlencoded"}, 415,
     "unsupported_media_type"),
    ("no write key", json.dumps({"batch": [TRACK]}).encode(), {"auth": False}, 401, "not_authenticated"),
])
def test_malformed_requests_get_their_4xx(write_key, case, raw, kwargs, status, error_type):
    response = send(write_key, raw, **kwargs)
    assert response.status_code == status
    assert response.json()["error"]["type"] == error_type
    assert not Event.objects.exists()


def test_a_revoked_or_unknown_write_key_is_401(tenant):
    response = send("sb_wk_live_unknown0_secret", {"batch": [TRACK]})
    assert response.status_code == 401 and not Event.objects.exists()


def test_valid_items_are_kept_and_unknown_fields_ignored(write_key, tenant):
    response = send(write_key, {"batch": [TRACK, {"type": "track"}, {**TRACK, "event": "B", "extra": 1}],
                                "someFutureField": True})
    assert response.status_code == 200
    assert [r["index"] for r in response.json()["rejected"]] == [1]
    assert sorted(Event.objects.values_list("name", flat=True)) == ["B", "Signed Up"]


def test_write_key_in_the_body_and_gzip(write_key, tenant):
    body = gzip.compress(json.dumps({"batch": [TRACK], "writeKey": write_key}).encode())
    response = send(write_key, body, auth=False, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 200
    assert Event.objects.get().recipient.external_id == "u1"


def test_a_batch_of_identifies_links_aliases_in_bulk(write_key, tenant):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    batch = [{"type": "identify", "userId": f"u{i}", "anonymousId": f"a{i}", "traits": {"n": i}}
             for i in range(100)]
    with CaptureQueriesContext(connection) as captured:
        assert send(write_key, {"batch": batch}).status_code == 200
    queries = [q for q in captured.captured_queries if "signalbox_cache" not in q["sql"]]
    assert len(queries) <= 25, len(queries)
    assert Recipient.objects.get(external_id="u7").aliases.get().alias == "a7"
    assert Recipient.objects.get(external_id="u7").attributes == {"n": 7}


def test_stored_fields_survive_the_bulk_insert(write_key, tenant):
    """Every column the batch insert writes, checked on the row (PostgreSQL uses UNNEST)."""
    call = {**TRACK, "messageId": "m-1", "properties": {"total": 42.5, "items": [1, 2]},
            "context": {"ip": "203.0.113.9"}, "timestamp": "2099-01-01T00:00:00Z"}
    earlier = {**call, "messageId": "m-2", "timestamp": "2026-11-20T10:00:00+01:00"}
    assert send(write_key, {"batch": [call, earlier]}).status_code == 200
    future, past = Event.objects.get(message_id="m-1"), Event.objects.get(message_id="m-2")
    assert (future.name, future.kind, future.source, future.recipient.external_id) == (
        "Signed Up", "track", "segment", "u1")
    assert future.properties == {"total": 42.5, "items": [1, 2]} and future.context == {"ip": "203.0.113.9"}
    assert future.timestamp_clamped and future.occurred_at == future.received_at
    assert not past.timestamp_clamped and past.occurred_at.isoformat() == "2026-11-20T09:00:00+00:00"
    assert future.processed_at is None and future.tenant == tenant
