"""The periodic tick: beat calls it every few seconds, tests call it directly."""

import logging

from django.conf import settings
from django.core.cache import cache
from django.utils.module_loading import import_string

from apps.core import clock

logger = logging.getLogger(__name__)

LAST_TICK_KEY = "signalbox:last-tick"


def tick() -> dict[str, object]:
    """Run each job of SIGNALBOX_TICK_JOBS once; one failing job does not stop the others."""
    results: dict[str, object] = {}
    for path in settings.SIGNALBOX_TICK_JOBS:
        try:
            results[path] = import_string(path)()
        except Exception:
            logger.exception("tick job %s failed", path)
            results[path] = "error"
    cache.set(LAST_TICK_KEY, clock.now().isoformat(), None)
    return results
