"""Starting with a bad environment fails with one line naming the variable; prod passes --deploy."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DJANGO_SETTINGS_MODULE",
                         "DJANGO_ALLOW_ASYNC_UNSAFE"}}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name,value", [
    ("DATABASE_URL", "not a url"),
    ("DATABASE_URL", "mysql://root@localhost/x"),
    ("DATABASE_URL", "postgres://"),
    ("REDIS_URL", "localhost:6379"),
    ("CONN_MAX_AGE", "forever"),
    ("SIGNALBOX_API_RATE_LIMIT", "many"),
    ("SIGNALBOX_API_RATE_LIMIT", "-1"),
])
def test_a_malformed_variable_stops_start_up_with_one_line(name, value):
    env = {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/x"} if name == "CONN_MAX_AGE" else {}
    result = manage("check", **env, **{name: value})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Signalbox configuration error: {name} ")
    assert "Traceback" not in result.stderr


def test_prod_requires_a_secret_key():
    result = manage("check", DJANGO_SETTINGS_MODULE="config.settings.prod")
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "Signalbox configuration error: SECRET_KEY is required in production "
        "and must be at least 50 characters")


def test_prod_passes_check_deploy_without_warnings():
    result = manage("check", "--deploy", "--fail-level", "WARNING",
                    DJANGO_SETTINGS_MODULE="config.settings.prod",
                    SECRET_KEY="x7Hq2vLk9Pz4mN8wR3tY6uB1cD5fG0jK2lQ9sV4xZ7aE3hJ6nM1pT8rW5yU0iO2e",
                    ALLOWED_HOSTS="signalbox.example.com")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
