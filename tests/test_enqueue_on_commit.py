"""Publishing after commit: lands on the broker when it is up; never fails the caller when down."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
from django.db import transaction
from apps.core.queue import enqueue_on_commit
from apps.core.tasks import tick
with transaction.atomic():
    enqueue_on_commit(tick)
print("committed")
"""


def run_with_broker(redis_url: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.dev", "REDIS_URL": redis_url,
           "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}", "SIGNALBOX_TEST_RUN": ""}
    return subprocess.run([sys.executable, "manage.py", "shell", "-c", SCRIPT], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_task_reaches_the_broker_after_commit(private_redis, tmp_path):
    result = run_with_broker(private_redis.url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert redis.Redis.from_url(private_redis.url).llen("scheduler") == 1


def test_a_broker_outage_is_logged_not_raised(private_redis, tmp_path):
    private_redis.stop()
    result = run_with_broker(private_redis.url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("committed")
    assert "could not publish core.tick" in result.stderr
