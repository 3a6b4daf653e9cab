"""The web server the README runs in production (granian serving config.wsgi), started as a real
process on the test database: the Segment SDK (gzip bodies, Basic auth), the native API and the
admin work through it as they do through Django's own test server."""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from segment.analytics.client import Client as SegmentClient

from apps.events.models import Event
from apps.events.tests.factories import api_key_for
from apps.recipients.models import Recipient
from apps.tenants.models import ApiKey
from apps.tenants.tests.factories import TenantFactory
from tests.fixtures.processes import ROOT, free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _get(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 — loopback only
            return response.status
    except (OSError, urllib.error.URLError):
        return None


@pytest.fixture
def granian(transactional_db, tmp_path):
    from django.db import connection

    url = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "SIGNALBOX_WORKER_DB_NAME": connection.settings_dict["NAME"]}
    log_path = tmp_path / "granian.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [Path(sys.executable).parent / "granian", "--interface", "wsgi", "--host", "127.0.0.1",
             "--port", url.rsplit(":", 1)[1], "--workers", "1", "--blocking-threads", "2", "--no-ws",
             "config.wsgi:application"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _get(f"{url}/healthz") == 200 or process.poll() is not None, timeout=60,
                 message="granian to answer /healthz")
        assert process.poll() is None, log_path.read_text(errors="replace")
        yield url
    finally:
        process.terminate()
        process.wait(20)


def _post(url: str, body: bytes, headers: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 — loopback only
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_segment_sdk_with_gzip_lands_through_granian(granian):
    tenant = TenantFactory()
    errors = []
    sdk = SegmentClient(api_key_for(tenant, kind=ApiKey.Kind.WRITE), host=granian, sync_mode=True,
                        gzip=True, max_retries=0, on_error=lambda exc, batch: errors.append(exc))
    sdk.identify("user-7", {"email": "Grace@Example.com", "plan": "team"})
    sdk.track("user-7", "Order Completed", {"order_id": "A-7"})

    assert not errors, errors
    recipient = Recipient.objects.get(tenant=tenant, external_id="user-7")
    assert (recipient.email, recipient.attributes) == ("grace@example.com", {"plan": "team"})
    track = Event.objects.get(tenant=tenant, recipient=recipient, kind="track")
    assert (track.name, track.properties) == ("Order Completed", {"order_id": "A-7"})


def test_the_native_api_answers_through_granian(granian):
    tenant = TenantFactory()
    headers = {"Authorization": f"Bearer {api_key_for(tenant)}", "Content-Type": "application/json"}
    status, body = _post(f"{granian}/api/v1/events",
                         json.dumps({"name": "signed_up", "recipient": "user-8"}).encode(), headers)
    assert status == 202, body
    assert Event.objects.get(pk=body["id"]).recipient.external_id == "user-8"

    status, body = _post(f"{granian}/api/v1/events", b'{"name": ', headers)
    assert (status, body["error"]["type"]) == (400, "malformed_json")
    status, body = _post(f"{granian}/api/v1/events", b"{}", {**headers, "Authorization": "Bearer sb_nope"})
    assert status == 401 and "error" in body


def test_the_admin_login_page_is_served_by_granian(granian):
    assert _get(f"{granian}/admin/login/") == 200


def test_the_wsgi_module_loads_the_views_and_freezes_what_it_loaded():
    # A fresh interpreter, as a granian worker imports it: the URLconf is loaded before the first
    # request, and everything loaded is out of the garbage collector's scans (config/wsgi.py).
    script = ("import gc, sys; import config.wsgi; from django.conf import settings; "
              "print(settings.ROOT_URLCONF in sys.modules, 'apps.api.v1.views' in sys.modules, "
              "gc.get_freeze_count())")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}).stdout.split()
    assert out[:2] == ["True", "True"]
    assert int(out[2]) > 50_000
