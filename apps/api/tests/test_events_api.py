import gzip
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.events.models import Event
from apps.recipients.models import Recipient
from apps.recipients.tests.factories import RecipientFactory

pytestmark = pytest.mark.django_db


def post(api, url, body, **headers):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    content_type = headers.pop("content_type", "application/json")
    return api.generic("POST", url, data, content_type=content_type, **headers)


def test_an_event_is_stored_before_202_with_its_recipient(
    api, tenant, django_capture_on_commit_callbacks
):
    from django.core.cache import cache

    from apps.events.services import DRAIN_FLAG

    cache.delete(DRAIN_FLAG)
    with django_capture_on_commit_callbacks() as callbacks:
        response = post(api, "/api/v1/events", {
            "name": "order.completed", "recipient": "user-1", "properties": {"total": 42.5},
            "timestamp": "2026-11-20T10:00:00+01:00", "cancellation_key": "order-1"})
    assert response.status_code == 202
    event = Event.objects.get(pk=response.json()["id"])
    assert (event.tenant, event.recipient.external_id, event.name) == (tenant, "user-1", "order.completed")
    assert event.properties == {"total": 42.5} and event.cancellation_key == "order-1"
    assert event.occurred_at.isoformat() == "2026-11-20T09:00:00+00:00"
    assert event.source == "api" and event.processed_at is None
    assert len(callbacks) == 1  # processing is scheduled after commit


def test_a_single_event_finds_its_recipient_known_merged_or_new(api, tenant):
    known = RecipientFactory(tenant=tenant, external_id="known")
    target = RecipientFactory(tenant=tenant, external_id="target")
    RecipientFactory(tenant=tenant, external_id="old", merged_into=target)
    ids = [post(api, "/api/v1/events", {"name": name, "recipient": to, "properties": {"n": 2 ** 70}}
                ).json()["id"] for name, to in [("a", "known"), ("b", "old"), ("c", "new"), ("d", "new")]]
    new = Recipient.objects.get(tenant=tenant, external_id="new")
    stored = Event.objects.filter(pk__in=ids).order_by("pk")
    assert [(e.name, e.recipient_id) for e in stored] == [
        ("a", known.pk), ("b", target.pk), ("c", new.pk), ("d", new.pk)]
    assert all(e.properties == {"n": 2 ** 70} for e in stored)  # beyond 64 bits: the json module


def test_an_inline_profile_is_upserted(api, tenant):
    RecipientFactory(tenant=tenant, external_id="user-1", attributes={"plan": "free", "x": 1})
    response = post(api, "/api/v1/events", {"name": "upgraded", "recipient": {
        "external_id": "user-1", "email": "NEW@example.com", "attributes": {"plan": "pro", "x": None}}})
    assert response.status_code == 202
    recipient = Recipient.objects.get(external_id="user-1")
    assert recipient.email == "new@example.com" and recipient.attributes == {"plan": "pro"}


def test_batch_accepts_valid_items_and_reports_the_rest_by_index(api, tenant):
    response = post(api, "/api/v1/events/batch", {"events": [
        {"name": "a", "recipient": "u1"},
        {"recipient": "u2"},
        {"name": "c", "recipient": {"external_id": "u3", "email": "bad"}},
        {"name": "d", "recipient": "u1", "timestamp": "yesterday"},
        {"name": "e", "recipient": "u4", "unknown_field": "ignored"},
    ]})
    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 3)
    errors = {r["index"]: r["error"]["fields"] for r in body["results"] if "error" in r}
    assert errors == {1: {"events[1].name": ["This field is required."]},
                      2: {"events[2].recipient.email": ["Enter a valid email address."]},
                      3: {"events[3].timestamp": [
                          "Not an ISO 8601 date-time (e.g. 2026-11-23T10:00:00Z)."]}}
    assert sorted(Event.objects.values_list("name", flat=True)) == ["a", "e"]
    ids = {r["index"]: r["id"] for r in body["results"] if "id" in r}
    assert {i: Event.objects.get(pk=pk).name for i, pk in ids.items()} == {0: "a", 4: "e"}
    assert not Recipient.objects.filter(external_id="u3").exists()


def test_a_batch_is_bulk_inserted(api, tenant):
    events = [{"name": "viewed", "recipient": f"u{i % 50}"} for i in range(500)]
    with CaptureQueriesContext(connection) as captured:
        response = post(api, "/api/v1/events/batch", {"events": events})
    assert response.json()["accepted"] == 500
    # A handful of statements for the lot, not one per event (SQLite splits the INSERT in ~8 for
    # its variable limit; without Redis the cache is a table, so its queries are left out).
    queries = [q["sql"] for q in captured.captured_queries if "signalbox_cache" not in q["sql"]]
    assert len(queries) <= 20, queries
    assert Recipient.objects.filter(tenant=tenant).count() == 50


def test_a_batch_finds_known_and_merged_recipients_and_creates_new_ones(api, tenant):
    # Known and merged recipients are found by the INSERT itself; a new one makes it insert
    # nothing, create the recipient and insert again: no event twice, none lost.
    known = RecipientFactory(tenant=tenant, external_id="known")
    target = RecipientFactory(tenant=tenant, external_id="target")
    RecipientFactory(tenant=tenant, external_id="old", merged_into=target)
    first = post(api, "/api/v1/events/batch", {"events": [
        {"name": "a", "recipient": "known"}, {"name": "b", "recipient": "old"}]})
    second = post(api, "/api/v1/events/batch", {"events": [
        {"name": "c", "recipient": "known"}, {"name": "d", "recipient": "new"},
        {"name": "e", "recipient": "old"}, {"name": "f", "recipient": "new"}]})
    assert (first.json()["accepted"], second.json()["accepted"]) == (2, 4)
    new = Recipient.objects.get(tenant=tenant, external_id="new")
    assert dict(Event.objects.values_list("name", "recipient_id")) == {
        "a": known.pk, "b": target.pk, "c": known.pk, "d": new.pk, "e": target.pk, "f": new.pk}
    assert Event.objects.count() == 6
    ids = [r["id"] for r in first.json()["results"] + second.json()["results"]]
    assert [Event.objects.get(pk=pk).name for pk in ids] == ["a", "b", "c", "d", "e", "f"]


def test_gzip_bodies_are_accepted(api):
    body = gzip.compress(json.dumps({"name": "zipped", "recipient": "u1"}).encode())
    response = post(api, "/api/v1/events", body, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 202
    assert Event.objects.get().name == "zipped"


def test_events_of_another_tenant_stay_there(api, charlie_api, tenant):
    post(charlie_api, "/api/v1/events", {"name": "theirs", "recipient": "user-1"})
    assert not Event.objects.filter(tenant=tenant).exists()
    assert not Recipient.objects.filter(tenant=tenant).exists()


BAD_INPUT = [
    ("wrong type of name", {"name": 5.5, "recipient": "u"}, 400, "name"),
    ("missing name", {"recipient": "u"}, 400, "name"),
    ("blank name", {"name": "  ", "recipient": "u"}, 400, "name"),
    ("missing recipient", {"name": "x"}, 400, "recipient"),
    ("recipient list", {"name": "x", "recipient": ["u"]}, 400, "recipient"),
    ("properties not an object", {"name": "x", "recipient": "u", "properties": [1]}, 400, "properties"),
    ("naive timestamp", {"name": "x", "recipient": "u", "timestamp": "2026-01-01T00:00"}, 400, "timestamp"),
    ("name too long", {"name": "x" * 201, "recipient": "u"}, 400, "name"),
    ("body is a list", [{"name": "x"}], 400, "body"),
    ("sub-tenant not allowed", {"name": "x", "recipient": "u", "tenant": "nope"}, 400, "tenant"),
]


@pytest.mark.parametrize("case,body,status,field", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_events_name_the_field_and_write_nothing(api, case, body, status, field):
    response = post(api, "/api/v1/events", body)
    assert response.status_code == status, response.json()
    assert field in response.json()["error"]["fields"]
    assert not Event.objects.exists() and not Recipient.objects.exists()


@pytest.mark.parametrize("case,raw,headers,status,error_type", [
    ("malformed json", b'{"name": ', {}, 400, "malformed_json"),
    ("not utf-8", b'{"name": "\xff\xfe"}', {}, 400, "malformed_json"),
    ("wrong content type", b"name=x", {"content_type": "application/x-www-form-urlencoded"}, 415,
     "unsupported_media_type"),
    ("invalid gzip", b"not gzip", {"HTTP_CONTENT_ENCODING": "gzip"}, 400, "invalid_gzip"),
    ("empty batch", b'{"events": []}', {"url": "/api/v1/events/batch"}, 400, "invalid_request"),
    ("batch too long", json.dumps({"events": [{"name": "x", "recipient": "u"}] * 1001}).encode(),
     {"url": "/api/v1/events/batch"}, 400, "invalid_request"),
    ("body too large", b'{"name": "' + b"x" * (6 * 1024 * 1024) + b'"}', {}, 413, "payload_too_large"),
])
def test_malformed_bodies_get_their_4xx(api, case, raw, headers, status, error_type):
    url = headers.pop("url", "/api/v1/events")
    response = post(api, url, raw, **headers)
    assert response.status_code == status
    assert response.json()["error"]["type"] == error_type
    assert not Event.objects.exists()


@pytest.mark.parametrize("url,body", [
    ("/api/v1/events", b'{"name": "x", "recipient": "u", "properties": {"a": NaN}}'),
    ("/api/v1/events", b'{"name": "x", "recipient": "u", "properties": {"a": -Infinity}}'),
    ("/api/v1/events", b'{"name": "x\\u0000", "recipient": "u"}'),
    ("/api/v1/events", b'{"name": "x", "recipient": "u", "properties": {"a\\u0000": 1}}'),
])
def test_nul_characters_and_non_json_numbers_are_refused_not_a_500(api, url, body):
    response = post(api, url, body)
    assert response.status_code == 400 and response.json()["error"]["type"] == "malformed_json"


def test_nul_in_the_path_or_query_is_refused(api):
    assert api.get("/api/v1/recipients/a%00b").status_code == 400
    assert api.get("/api/v1/recipients/ab?tenant=x%00").status_code == 400


def test_integers_beyond_64_bits_are_stored_as_sent(api, tenant):
    """orjson refuses them (apps.events.services._json falls back to the json module)."""
    big = 2**70
    response = post(api, "/api/v1/events/batch", {"events": [
        {"name": "big", "recipient": "u1", "properties": {"n": big, "nested": [{"m": -big}]}}]})
    assert response.status_code == 202
    assert Event.objects.get().properties == {"n": big, "nested": [{"m": -big}]}
