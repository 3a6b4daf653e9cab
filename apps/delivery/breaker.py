"""Circuit breaker per (tenant, provider), shared by every worker through the cache.

closed → (THRESHOLD transient failures in a row) → open for COOL_DOWN seconds → half-open: one
probe call is let through (the first worker to ask wins it); its success closes the breaker,
its failure opens it again. Permanent errors (a bad address) say nothing about the provider's
health and do not count.

A batch of sends reads the states of its providers once (`Breakers`, one cache round trip) and
writes only when something changes: a closed breaker costs nothing per message.
"""

from django.conf import settings
from django.core.cache import cache

from apps.core import clock


def _key(tenant_id: int, config_id: int) -> str:
    return f"signalbox:breaker:{tenant_id}:{config_id}"


class Breakers:
    def __init__(self, pairs=()):
        """`pairs`: the (tenant id, provider config id) pairs the batch may call."""
        keys = {_key(tenant_id, config_id) for tenant_id, config_id in pairs}
        self.states = cache.get_many(list(keys)) if keys else {}
        self.read = keys

    def _state(self, key: str) -> dict | None:
        if key not in self.read:  # not in the batch's snapshot: read it now
            self.read.add(key)
            state = cache.get(key)
            if state:
                self.states[key] = state
        return self.states.get(key)

    def is_open(self, *, tenant_id: int, config_id: int) -> bool:
        """Open and still cooling down (a half-open breaker is not: it takes a probe)."""
        state = self._state(_key(tenant_id, config_id))
        return bool(state and state.get("opened_at") is not None and clock.now().timestamp()
                    - state["opened_at"] < settings.SIGNALBOX_BREAKER_COOL_DOWN_SECONDS)

    def allows(self, *, tenant_id: int, config_id: int) -> bool:
        """Whether to call the provider now (claims the probe of a half-open breaker)."""
        key = _key(tenant_id, config_id)
        state = self._state(key)
        if not state or state.get("opened_at") is None:
            return True
        if self.is_open(tenant_id=tenant_id, config_id=config_id):
            return False
        return cache.add(key + ":probe", 1, settings.SIGNALBOX_BREAKER_COOL_DOWN_SECONDS)

    def record(self, *, tenant_id: int, config_id: int, ok: bool) -> None:
        key = _key(tenant_id, config_id)
        if ok:
            if self.states.pop(key, None) is not None:  # it had failures or was open: close it
                cache.delete_many([key, key + ":probe"])
            return
        state = cache.get(key) or {"failures": 0, "opened_at": None}
        state["failures"] += 1
        if state["failures"] >= settings.SIGNALBOX_BREAKER_THRESHOLD:
            state["opened_at"] = clock.now().timestamp()
            cache.delete(key + ":probe")
        cache.set(key, state, None)
        self.states[key] = state
