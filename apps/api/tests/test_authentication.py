import pytest
from rest_framework.test import APIClient

from apps.events.tests.factories import api_key_for
from apps.tenants import services
from apps.tenants.models import ApiKey

pytestmark = pytest.mark.django_db

ENDPOINTS = [("get", "/api/v1/recipients/u1"), ("put", "/api/v1/recipients/u1"),
             ("delete", "/api/v1/recipients/u1"), ("post", "/api/v1/events"),
             ("post", "/api/v1/events/batch")]


def call(client, method, url):
    return getattr(client, method)(url, {}, format="json")


@pytest.mark.parametrize("method,url", ENDPOINTS)
@pytest.mark.parametrize("header", [None, "Bearer sb_sk_live_nope0000_abc", "Basic abc", "Bearer"])
def test_missing_or_unknown_keys_are_401_json(method, url, header):
    client = APIClient()
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = call(client, method, url)
    assert response.status_code == 401
    assert response.json()["error"]["type"] in {"not_authenticated", "authentication_failed"}
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_write_keys_and_revoked_keys_are_refused(tenant, django_capture_on_commit_callbacks):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(tenant, kind=ApiKey.Kind.WRITE)}")
    assert client.get("/api/v1/recipients/u1").status_code == 401
    token = api_key_for(tenant)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/recipients/u1").status_code == 404  # authenticated
    with django_capture_on_commit_callbacks(execute=True):
        services.api_key_revoke(api_key=ApiKey.objects.get(prefix=token.rsplit("_", 1)[0]))
    assert client.get("/api/v1/recipients/u1").status_code == 401
