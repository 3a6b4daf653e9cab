"""Process probes: /healthz (alive) and /readyz (can do work: database, broker, cache)."""

import logging

from celery import current_app
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from apps.core.services import LAST_TICK_KEY

logger = logging.getLogger(__name__)


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_broker() -> None:
    with current_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        conn.default_channel  # noqa: B018 - opening a channel talks to the broker


def _check_cache() -> None:
    cache.set("signalbox:readyz", 1, 10)


CHECKS = {"database": _check_database, "broker": _check_broker, "cache": _check_cache}


@require_GET
def healthz(request):
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request):
    checks = {}
    for name, check in CHECKS.items():
        try:
            check()
            checks[name] = {"ok": True}
        except Exception as exc:
            logger.warning("readiness check %s failed: %s", name, exc)
            checks[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    ready = all(c["ok"] for c in checks.values())
    last_tick = cache.get(LAST_TICK_KEY) if checks["cache"]["ok"] else None
    body = {"status": "ok" if ready else "unavailable", "checks": checks, "last_tick": last_tick}
    return JsonResponse(body, status=200 if ready else 503)
