"""A bounded schemathesis run over the native API: no generated input may produce a 5xx."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.events.tests.factories import api_key_for
from apps.tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def test_no_generated_request_gets_a_server_error(live_server, tmp_path):
    token = api_key_for(TenantFactory())
    result = subprocess.run(
        [str(SCHEMATHESIS), "run", f"{live_server.url}/api/schema/?format=json",
         "--checks", "not_a_server_error", "--max-examples", "25",
         "--generation-deterministic", "--header", f"Authorization: Bearer {token}",
         "--workers", "1", "--request-timeout", "10"],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Failures:" not in result.stdout, result.stdout[-4000:]
    assert "Tested: " in result.stdout
