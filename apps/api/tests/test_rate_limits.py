"""Per-tenant API rate limits (apps/api/ratelimit.py): a shared count per limit and second."""

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import close_old_connections
from django.test import Client, override_settings
from django.urls import reverse
from rest_framework.test import APIClient

from apps.api import ratelimit
from apps.core import cache as shared_cache
from apps.core import clock
from apps.events.models import Event
from apps.events.tests.factories import api_key_for
from apps.tenants.models import ApiKey
from apps.tenants.tests.factories import TenantFactory, UserFactory, staff_member

pytestmark = pytest.mark.django_db

LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "rl"}}


@pytest.fixture
def frozen(monkeypatch):
    """The project clock stopped 0.25 s into a second; `frozen.move(seconds)` moves it."""
    class Frozen:
        at = clock.now().replace(microsecond=250_000)

        def move(self, seconds):
            self.at += timedelta(seconds=seconds)

    stopped = Frozen()
    monkeypatch.setattr(clock, "now", lambda: stopped.at)
    return stopped


def client_for(tenant) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(tenant)}")
    return client


def segment_track(write_key, user_id="u1"):
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    body = json.dumps({"type": "track", "event": "Signed Up", "userId": user_id})
    return Client().generic("POST", "/v1/track", body, content_type="application/json",
                            HTTP_AUTHORIZATION=auth)


def test_no_limit_by_default(tenant, frozen):
    api = client_for(tenant)
    for _ in range(5):
        response = api.get("/api/v1/recipients/u1")
        assert response.status_code == 404
        assert "RateLimit-Limit" not in response


def test_a_tenant_over_its_limit_gets_429_until_the_next_second(tenant, frozen):
    tenant.api_rate_limit = 2
    tenant.save()
    api = client_for(tenant)
    first, second, third = (api.get("/api/v1/recipients/u1") for _ in range(3))
    assert [first.status_code, second.status_code] == [404, 404]
    assert [first["RateLimit-Limit"], first["RateLimit-Remaining"], second["RateLimit-Remaining"]] \
        == ["2", "1", "0"]
    assert third.status_code == 429
    assert third["Retry-After"] == "1" and third["RateLimit-Reset"] == "1"
    error = third.json()["error"]
    assert error["type"] == "throttled"
    assert error["message"] == ("Rate limit reached: 2 requests per second (the limit of tenant "
                                "'alice'). Retry after 1 s.")
    # A refused write writes nothing.
    refused = api.post("/api/v1/events", {"name": "order.paid", "recipient": {"external_id": "u1"}},
                       format="json")
    assert refused.status_code == 429 and not Event.objects.exists()
    frozen.move(1)
    again = api.get("/api/v1/recipients/u1")
    assert again.status_code == 404 and again["RateLimit-Remaining"] == "1"


def test_once_over_its_limit_a_process_refuses_the_rest_of_the_second_without_counting(
        tenant, frozen, monkeypatch):
    tenant.api_rate_limit = 1
    tenant.save()
    api = client_for(tenant)
    counted = []
    real_count = ratelimit.cache_count
    monkeypatch.setattr(ratelimit, "cache_count", lambda *a, **k: counted.append(a) or real_count(*a, **k))
    statuses = [api.get("/api/v1/recipients/u1").status_code for _ in range(4)]
    assert statuses == [404, 429, 429, 429] and len(counted) == 2
    frozen.move(1)
    assert api.get("/api/v1/recipients/u1").status_code == 404 and len(counted) == 3


def test_at_high_limits_processes_lease_slots_and_never_pass_the_limit_together(frozen, monkeypatch):
    owner = TenantFactory(slug="busy", api_rate_limit=300)  # leases of 3 slots
    calls = []
    real_count = ratelimit.cache_count
    monkeypatch.setattr(ratelimit, "cache_count", lambda *a, **k: calls.append(k) or real_count(*a, **k))
    processes = [{}, {}, {}, {}]  # each process's own leases
    admitted = 0
    for n in range(400):
        monkeypatch.setattr(ratelimit, "_leases", processes[n % 4])
        admitted += not ratelimit.rate_limit_count(owner).exceeded
    assert {k["amount"] for k in calls} == {3}
    assert 300 - 4 * 2 <= admitted <= 300  # unused leases may refuse early, never late
    assert len(calls) < 400 / 2


def test_secret_and_write_keys_share_the_count_and_segment_gets_429(tenant, frozen):
    tenant.api_rate_limit = 2
    tenant.save()
    write_key = api_key_for(tenant, kind=ApiKey.Kind.WRITE)
    assert client_for(tenant).get("/api/v1/recipients/u1").status_code == 404
    accepted = segment_track(write_key, "u1")
    assert accepted.status_code == 200 and accepted["RateLimit-Remaining"] == "0"
    refused = segment_track(write_key, "u2")
    assert refused.status_code == 429 and refused["Retry-After"] == "1"
    assert refused.json()["error"]["type"] == "throttled"
    assert list(Event.objects.values_list("recipient__external_id", flat=True)) == ["u1"]


def test_sub_tenants_share_the_limit_of_the_ancestor_that_sets_it(frozen):
    parent = TenantFactory(slug="parent", api_rate_limit=3)
    child = TenantFactory(slug="child", parent=parent)
    grandchild = TenantFactory(slug="grandchild", parent=child)
    own = TenantFactory(slug="own", parent=parent, api_rate_limit=1)
    assert grandchild.effective_api_rate_limit() == (3, parent)
    assert own.effective_api_rate_limit() == (1, own)
    statuses = [client.get("/api/v1/recipients/u1").status_code
                for client in (client_for(parent), client_for(child), client_for(grandchild),
                               client_for(child))]
    assert statuses == [404, 404, 404, 429]  # three of the parent's count, then refused
    assert client_for(own).get("/api/v1/recipients/u1").status_code == 404  # a count of its own
    refused = client_for(grandchild).get("/api/v1/recipients/u1")
    assert "the limit of tenant 'parent'" in refused.json()["error"]["message"]


@override_settings(SIGNALBOX_API_RATE_LIMIT=1)
def test_the_setting_limits_a_top_tenants_tree(frozen):
    top = TenantFactory(slug="top")
    below = TenantFactory(slug="below", parent=top)
    assert below.effective_api_rate_limit() == (1, top)
    assert client_for(top).get("/api/v1/recipients/u1").status_code == 404
    assert client_for(below).get("/api/v1/recipients/u1").status_code == 429
    assert TenantFactory(slug="other").effective_api_rate_limit()[1].slug == "other"


def test_an_unreachable_cache_lets_requests_through(tenant, frozen, monkeypatch):
    class Down:
        def __getattr__(self, name):
            raise ConnectionError("cache down")

    tenant.api_rate_limit = 1
    tenant.save()
    api = client_for(tenant)  # the key is made while the cache is up
    monkeypatch.setattr(shared_cache, "caches", {"default": Down()})
    for _ in range(3):
        response = api.get("/api/v1/recipients/u1")
        assert response.status_code == 404 and "RateLimit-Limit" not in response


@pytest.mark.parametrize("backend", ["configured", "locmem"])
def test_cache_count_counts_within_its_timeout(backend, settings):
    if backend == "locmem":
        settings.CACHES = LOCMEM
    key = f"count-test:{clock.now().timestamp()}"
    assert [shared_cache.cache_count(key, timeout=60) for _ in range(3)] == [1, 2, 3]


@pytest.mark.django_db(transaction=True)
def test_concurrent_counts_on_redis_are_all_distinct():
    if not isinstance(caches["default"], RedisCache):
        pytest.skip("needs Redis (REDIS_URL): the database cache's add-then-increment is not atomic")
    key = f"count-race:{clock.now().timestamp()}"

    def count(_):
        try:
            return shared_cache.cache_count(key, timeout=60)
        finally:
            close_old_connections()

    with ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(count, range(40)))
    assert sorted(counts) == list(range(1, 41))


def test_only_superusers_change_a_limit_in_the_admin(client):
    tenant = TenantFactory(slug="acme")
    client.force_login(staff_member(tenant=tenant))
    url = reverse("admin:tenants_tenant_change", args=[tenant.pk])
    page = client.get(url).content.decode()
    assert "no API rate limit" in page and 'name="api_rate_limit"' not in page

    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    inlines = {f"{inline.formset.prefix}-{name}": "0" for inline in
               client.get(url).context["inline_admin_formsets"] for name in ("TOTAL_FORMS", "INITIAL_FORMS")}
    form = {"name": "Acme", "slug": "acme", "api_rate_limit": "0", **inlines}
    response = client.post(url, form)
    assert "api_rate_limit" in response.context["adminform"].form.errors
    response = client.post(url, {**form, "api_rate_limit": "50"})
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.api_rate_limit == 50
    assert "API rate limit 50 requests/s" in client.get(url).content.decode()
