"""Circuit breaker per (tenant, provider), shared by every worker through the cache.

closed → (THRESHOLD transient failures in a row) → open for COOL_DOWN seconds → half-open: one
probe call is let through (the first worker to ask wins it); its success closes the breaker,
its failure opens it again. Permanent errors (a bad address) say nothing about the provider's
health and do not count.
"""

from django.conf import settings
from django.core.cache import cache

from apps.core import clock


def _key(tenant_id: int, config_id: int) -> str:
    return f"signalbox:breaker:{tenant_id}:{config_id}"


def breaker_allows(*, tenant_id: int, config_id: int) -> bool:
    """Whether to call the provider now (claims the probe of a half-open breaker)."""
    state = cache.get(_key(tenant_id, config_id))
    if not state or state.get("opened_at") is None:
        return True
    if breaker_is_open(tenant_id=tenant_id, config_id=config_id):
        return False
    return cache.add(_key(tenant_id, config_id) + ":probe", 1,
                     settings.SIGNALBOX_BREAKER_COOL_DOWN_SECONDS)


def breaker_is_open(*, tenant_id: int, config_id: int) -> bool:
    """Open and still cooling down (a half-open breaker is not: it takes a probe)."""
    state = cache.get(_key(tenant_id, config_id))
    return bool(state and state.get("opened_at") is not None and clock.now().timestamp()
                - state["opened_at"] < settings.SIGNALBOX_BREAKER_COOL_DOWN_SECONDS)


def breaker_record(*, tenant_id: int, config_id: int, ok: bool) -> None:
    key = _key(tenant_id, config_id)
    if ok:
        cache.delete_many([key, key + ":probe"])
        return
    state = cache.get(key) or {"failures": 0, "opened_at": None}
    state["failures"] += 1
    if state["failures"] >= settings.SIGNALBOX_BREAKER_THRESHOLD:
        state["opened_at"] = clock.now().timestamp()
        cache.delete(key + ":probe")
    cache.set(key, state, None)
