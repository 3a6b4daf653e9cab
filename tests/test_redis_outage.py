"""Redis (broker and cache) down: the API still accepts sends and events, and once Redis is back
the sweeper gets every one of them delivered. Web server and worker are real subprocesses on a
private redis-server that the test stops and restarts."""

import os
import subprocess
import sys
import time

import pytest
import requests
from django.db import connection

from apps.delivery.models import ProviderConfig
from apps.events.models import Event
from apps.events.tests.factories import api_key_for
from apps.messaging.models import Message
from apps.tenants.tests.factories import TenantFactory
from tests.fixtures.processes import ROOT, WorkerProcess, free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SENDS = 5


def test_accepted_while_redis_is_down_delivered_after_it_returns(private_redis, tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test",
           "REDIS_URL": private_redis.url, "SIGNALBOX_WORKER_DB_NAME": connection.settings_dict["NAME"],
           "SIGNALBOX_MESSAGE_STUCK_SECONDS": "1", "SIGNALBOX_EVENT_REQUEUE_AFTER_SECONDS": "1"}
    tenant = TenantFactory()
    ProviderConfig.objects.create(tenant=tenant, name="log", channel="email", kind="log")
    auth = {"Authorization": f"Bearer {api_key_for(tenant)}"}
    port = free_port()
    web = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                           cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = WorkerProcess(tmp_path / "worker.log", connection.settings_dict["NAME"], extra_env=env)
    try:
        wait_for(lambda: _up(port), timeout=30, message="the web server")
        private_redis.stop()
        for n in range(SENDS):
            send = {"recipient": {"external_id": f"u{n}", "email": f"u{n}@example.com"},
                    "channel": "email", "content": {"email": {"subject": "Hi", "text": "Hello"}}}
            response = requests.post(f"http://127.0.0.1:{port}/api/v1/messages", headers=auth,
                                     json=send, timeout=30)
            assert response.status_code == 202, response.text
        response = requests.post(f"http://127.0.0.1:{port}/api/v1/events", headers=auth, timeout=30,
                                 json={"name": "signed_up", "recipient": "u0"})
        assert response.status_code == 202, response.text
        assert Message.objects.filter(status="queued").count() == SENDS

        private_redis.start()  # empty: whatever was published before the outage is gone too
        worker.start()
        time.sleep(1.5)  # past the (shortened) stuck timeouts
        subprocess.run([sys.executable, "manage.py", "shell", "-c",
                        "from apps.core.services import tick; tick()"],
                       cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)
        wait_for(lambda: Message.objects.filter(status="sent").count() == SENDS, timeout=60,
                 message="every send accepted during the outage to be sent")
        wait_for(lambda: not Event.objects.filter(processed_at__isnull=True).exists(), timeout=60,
                 message="the event accepted during the outage to be processed")
    finally:
        worker.stop()
        web.terminate()
        web.wait(10)


def _up(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False
