from datetime import datetime, timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from apps.core import clock, services

pytestmark = pytest.mark.django_db

calls: list[str] = []


def job_ok():
    calls.append("ok")
    return 1


def job_broken():
    raise RuntimeError("boom")


def test_tick_runs_every_job_even_after_one_fails(settings):
    calls.clear()
    settings.SIGNALBOX_TICK_JOBS = [f"{__name__}.job_broken", f"{__name__}.job_ok"]
    results = services.tick()
    assert results == {f"{__name__}.job_broken": "error", f"{__name__}.job_ok": 1}
    assert calls == ["ok"]
    assert cache.get(services.LAST_TICK_KEY) is not None


def test_clock_travel_moves_now_and_reset_restores_it(clock_travel):
    clock_travel(seconds=86400)
    assert clock.now() - timezone.now() > timedelta(hours=23)
    clock.reset()
    assert abs(clock.now() - timezone.now()) < timedelta(seconds=5)


def test_production_ignores_any_offset(settings, clock_travel):
    clock_travel(seconds=86400)
    settings.SIGNALBOX_CLOCK_OFFSET_ENABLED = False
    assert abs(clock.now() - timezone.now()) < timedelta(seconds=5)
    assert isinstance(clock.now(), datetime)
