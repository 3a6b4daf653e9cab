import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.tenants import services
from apps.tenants.models import ApiKey, Role
from apps.tenants.tests.factories import TenantFactory, staff_member

pytestmark = pytest.mark.django_db


def test_only_a_hash_of_the_secret_is_stored():
    api_key, token = services.api_key_create(tenant=TenantFactory(), name="backend")
    secret = token.rsplit("_", 1)[1]
    assert token.startswith(api_key.prefix + "_")
    row = ApiKey.objects.values().get(pk=api_key.pk)
    assert secret not in str(row)
    assert row["secret_hash"] == ApiKey.hash_secret(secret) != secret


def test_a_token_authenticates_as_its_tenant_kind_and_mode():
    tenant = TenantFactory()
    api_key, token = services.api_key_create(
        tenant=tenant, name="ingest", kind=ApiKey.Kind.WRITE, mode=ApiKey.Mode.TEST
    )
    identity = services.api_key_authenticate(token=token)
    assert identity == services.ApiKeyIdentity(
        id=api_key.pk, tenant_id=tenant.pk, kind="write", mode="test"
    )
    assert api_key.prefix.startswith("sb_wk_test_")


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1] + ("x" if t[-1] != "x" else "y"),   # wrong secret
    lambda t: t.replace("_", "-"),                         # malformed
    lambda t: "sb_sk_live_unknown1_" + t.rsplit("_", 1)[1],  # unknown prefix
    lambda t: "",
])
def test_wrong_or_malformed_tokens_are_refused(mangle):
    _, token = services.api_key_create(tenant=TenantFactory(), name="k")
    assert services.api_key_authenticate(token=mangle(token)) is None


def test_revocation_applies_to_the_next_request_even_when_cached(django_capture_on_commit_callbacks):
    api_key, token = services.api_key_create(tenant=TenantFactory(), name="k")
    assert services.api_key_authenticate(token=token) is not None  # now cached
    assert cache.get(f"signalbox:apikey:{api_key.prefix}") is not None
    with django_capture_on_commit_callbacks(execute=True):
        services.api_key_revoke(api_key=api_key)
    assert services.api_key_authenticate(token=token) is None
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is not None


def test_lookups_are_cached():
    _, token = services.api_key_create(tenant=TenantFactory(), name="k")
    with CaptureQueriesContext(connection) as first:
        services.api_key_authenticate(token=token)
    with CaptureQueriesContext(connection) as later:
        for _ in range(3):
            assert services.api_key_authenticate(token=token) is not None
    # (Without Redis the cache itself is a table, so count only queries on the keys table.)
    assert any("tenants_apikey" in q["sql"] for q in first.captured_queries)
    assert not any("tenants_apikey" in q["sql"] for q in later.captured_queries)


def test_each_process_keeps_a_key_for_a_second_and_then_reads_it_again(monkeypatch, settings):
    """A key revoked by another process (its row and the shared cache entry changed, not this
    process's memo) is refused here once the memo's second has passed; until then no read."""
    settings.SIGNALBOX_API_KEY_MEMO_SECONDS = 1.0
    now = [1000.0]
    monkeypatch.setattr(services.time, "monotonic", lambda: now[0])
    api_key, token = services.api_key_create(tenant=TenantFactory(), name="k")
    assert services.api_key_authenticate(token=token) is not None
    ApiKey.objects.filter(pk=api_key.pk).update(revoked_at="2026-01-01T00:00:00Z")
    cache.delete(f"signalbox:apikey:{api_key.prefix}")  # what api_key_revoke does elsewhere
    now[0] += 0.9
    with CaptureQueriesContext(connection) as queries:
        assert services.api_key_authenticate(token=token) is not None
    assert not queries.captured_queries
    now[0] += 0.2
    assert services.api_key_authenticate(token=token) is None


def test_without_the_memo_every_request_reads_the_shared_cache(settings):
    settings.SIGNALBOX_API_KEY_MEMO_SECONDS = 0
    api_key, token = services.api_key_create(tenant=TenantFactory(), name="k")
    assert services.api_key_authenticate(token=token) is not None
    ApiKey.objects.filter(pk=api_key.pk).update(revoked_at="2026-01-01T00:00:00Z")
    cache.delete(f"signalbox:apikey:{api_key.prefix}")
    assert services.api_key_authenticate(token=token) is None


def test_last_used_is_written_by_the_tick_job(clock_travel):
    api_key, token = services.api_key_create(tenant=TenantFactory(), name="k")
    assert services.api_keys_record_usage() == 0
    services.api_key_authenticate(token=token)
    assert services.api_keys_record_usage() == 1
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None
    assert services.api_keys_record_usage() == 0  # nothing newer


def test_admin_shows_the_secret_once_and_never_again(client):
    tenant = TenantFactory()
    client.force_login(staff_member(tenant=tenant, role=Role.TENANT_ADMIN))
    response = client.post(
        reverse("admin:tenants_apikey_add"),
        {"tenant": tenant.pk, "name": "backend", "kind": "secret", "mode": "live"},
    )
    assert response.status_code == 200
    api_key = ApiKey.objects.get(name="backend")
    token = response.context["token"]
    assert token.startswith(api_key.prefix) and token in response.content.decode()
    assert services.api_key_authenticate(token=token).tenant_id == tenant.pk
    secret = token.rsplit("_", 1)[1]
    for url in (reverse("admin:tenants_apikey_change", args=[api_key.pk]),
                reverse("admin:tenants_apikey_changelist")):
        page = client.get(url)
        assert page.status_code == 200
        assert secret not in page.content.decode()
    assert "messages" not in response.cookies  # not parked in a message cookie either


def test_admin_revoke_action(client, django_capture_on_commit_callbacks):
    tenant = TenantFactory()
    client.force_login(staff_member(tenant=tenant, role=Role.TENANT_ADMIN))
    api_key, token = services.api_key_create(tenant=tenant, name="k")
    services.api_key_authenticate(token=token)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:tenants_apikey_changelist"),
                               {"action": "revoke", "_selected_action": [api_key.pk]})
    assert response.status_code == 302
    assert services.api_key_authenticate(token=token) is None


@pytest.mark.parametrize("token", ["sb_sk_live_abc\x00defg_" + "a" * 32, "sb_sk_live_abcdefgh_" + "a" * 200,
                                   "sb_xx_live_abcdefgh_" + "a" * 32, "sb_sk_live_abcdefgh_" + "ä" * 32])
def test_tokens_of_the_wrong_shape_never_reach_the_database(token, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert services.api_key_authenticate(token=token) is None
