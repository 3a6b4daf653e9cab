"""JSON nested deeper than parsing.MAX_DEPTH is a 400 on every endpoint that takes JSON, never a
500 (Python's recursion limit) and never stored."""

import base64

import pytest
from django.test import Client

from apps.core.parsing import MAX_DEPTH, json_loads
from apps.delivery.models import ProviderConfig
from apps.events.models import Event
from apps.events.tests.factories import api_key_for
from apps.messaging.models import Message
from apps.tenants.models import ApiKey

pytestmark = pytest.mark.django_db


def nested(levels: int, leaf: str = '"{{ x }}"') -> str:
    """`levels` arrays and objects around `leaf`, counting the enclosing ones the caller adds."""
    return "[" * levels + leaf + "]" * levels


def post(api, tenant, endpoint: str, levels: int):
    if endpoint == "messages":  # body → content → webhook → body → …
        body = ('{"recipient": {"external_id": "u1", "email": "a@example.com"}, "channel": "webhook", '
                f'"content": {{"webhook": {{"body": {nested(levels - 3)}}}}}}}')
        return api.generic("POST", "/api/v1/messages", body, content_type="application/json")
    if endpoint == "events":  # body → properties → a → …
        body = f'{{"name": "x", "recipient": "u1", "properties": {{"a": {nested(levels - 2)}}}}}'
        return api.generic("POST", "/api/v1/events", body, content_type="application/json")
    if endpoint == "segment":
        key = api_key_for(tenant, kind=ApiKey.Kind.WRITE)
        auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
        body = ('{"type": "track", "event": "x", "userId": "u1", '
                f'"properties": {{"a": {nested(levels - 2)}}}}}')
        return Client().generic("POST", "/v1/track", body, content_type="application/json",
                                HTTP_AUTHORIZATION=auth)
    config = ProviderConfig.objects.create(tenant=tenant, name="log", channel="email", kind="log")
    body = f'{{"events": [{{"type": "delivered", "address": "a@example.com", "x": {nested(levels - 3)}}}]}}'
    return Client().generic("POST", config.webhook_url().removeprefix("http://localhost:8000"), body,
                            content_type="application/json")


@pytest.mark.parametrize("endpoint", ["messages", "events", "segment", "provider webhook"])
@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 900, 5000])
def test_too_deep_json_is_a_400_and_stores_nothing(api, tenant, endpoint, levels):
    response = post(api, tenant, endpoint, levels)
    assert response.status_code == 400, response.content[:300]
    assert f"deeper than {MAX_DEPTH} levels" in response.json()["error"]["message"] + str(
        response.json()["error"]["fields"])
    assert not Event.objects.exists() and not Message.objects.exists()


@pytest.mark.parametrize("endpoint", ["messages", "events", "segment"])
def test_json_at_the_limit_is_accepted(api, tenant, endpoint):
    assert post(api, tenant, endpoint, MAX_DEPTH).status_code in (200, 202)


def test_the_limit_counts_levels_not_brackets():
    assert json_loads(("[" + "{}," * 100 + "1]").encode()) == [{}] * 100 + [1]  # many, shallow
    assert json_loads(f'"{nested(100, "x")}"'.encode()) == nested(100, "x")  # brackets in a string
    with pytest.raises(ValueError, match="deeper than"):
        json_loads(nested(MAX_DEPTH + 1, "1").encode())
