"""The only clock Signalbox reads.

Tests move time with `travel()`; the offset lives in the shared cache, so a worker subprocess
sees the same time as the test that moved it. Production never reads the offset.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from apps.core.cache import cache_get

OFFSET_KEY = "signalbox:clock-offset-seconds"


def now() -> datetime:
    current = timezone.now()
    if settings.SIGNALBOX_CLOCK_OFFSET_ENABLED:
        current += timedelta(seconds=cache_get(OFFSET_KEY, 0))
    return current


def travel(*, seconds: float) -> None:
    """Move the clock forward (or back) by `seconds`, for every process sharing the cache."""
    if not settings.SIGNALBOX_CLOCK_OFFSET_ENABLED:
        raise RuntimeError("clock.travel() needs SIGNALBOX_CLOCK_OFFSET_ENABLED (test settings)")
    cache.set(OFFSET_KEY, cache.get(OFFSET_KEY, 0) + seconds, None)


def reset() -> None:
    cache.delete(OFFSET_KEY)
