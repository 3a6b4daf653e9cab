"""Per-tenant API rate limits: requests per second for all of a tenant's API keys together.

The limit is `Tenant.effective_api_rate_limit()`: the tenant's own, else its nearest ancestor's,
counted together with that ancestor's (sub-tenants never multiply a limit), else
SIGNALBOX_API_RATE_LIMIT for the top tenant's tree; none by default. Only superusers set it.
Requests are counted per limit and calendar second in the shared cache, so all processes share
one count, and none is kept for a tenant without a limit. A fixed window lets a burst of up to
twice the limit straddle a second's boundary; what it buys is one counter instead of a log of
timestamps.

A process takes its slots in the count a lease at a time (`lease_size`: 1 % of the limit), and
hands them to requests without asking the cache until the lease is used up: a Redis round trip
costs about as much CPU as the rest of a small API request, and this makes it one per 100
requests at high limits, while limits under 200 per second stay exact. Slots are counted before
they are used, so a tenant never gets more than its limit; a process's unused lease can only
refuse early, by less than one lease per process (under 1 % of the limit each).

A refused request gets 429 with `Retry-After`; every response to a limited tenant carries
`RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds). When the cache cannot
be reached the request is let through: an outage of Redis never refuses API calls.
"""

import math
import threading
from dataclasses import dataclass

from apps.core import clock
from apps.core.cache import cache_count
from apps.tenants.models import Tenant

WINDOW_SECONDS = 1
_lock = threading.Lock()
# owner tenant id → (window, next slot, last slot) of this process's lease in the owner's count.
# A lease whose last slot is over the limit refuses the rest of its window without a round trip.
_leases: dict[int, tuple[int, int, int]] = {}


def lease_size(limit: int) -> int:
    return max(limit // 100, 1)


@dataclass(frozen=True)
class RateLimit:
    limit: int
    owner: Tenant  # whose limit it is: the tenant itself or the ancestor it shares a count with
    count: int  # this request's slot in its window's count
    reset: int  # seconds until the window ends

    @property
    def exceeded(self) -> bool:
        return self.count > self.limit

    @property
    def message(self) -> str:
        return (f"Rate limit reached: {self.limit} requests per second (the limit of tenant "
                f"'{self.owner.slug}'). Retry after {self.reset} s.")

    def headers(self, *, refused: bool) -> dict[str, str]:
        headers = {"RateLimit-Limit": str(self.limit),
                   "RateLimit-Remaining": str(max(self.limit - self.count, 0)),
                   "RateLimit-Reset": str(self.reset)}
        return {**headers, "Retry-After": str(self.reset)} if refused else headers


def rate_limit_count(tenant: Tenant) -> RateLimit | None:
    """Count one request for `tenant`: where it stands against its limit, or None when the
    tenant has no limit or the cache could not count."""
    found = tenant.effective_api_rate_limit()
    if found is None:
        return None
    limit, owner = found
    now = clock.now().timestamp()
    window = int(now // WINDOW_SECONDS)
    slot = _slot(owner.pk, window, limit)
    if slot is None:
        return None
    reset = max(math.ceil((window + 1) * WINDOW_SECONDS - now), 1)
    return RateLimit(limit=limit, owner=owner, count=slot, reset=reset)


def _slot(owner_id: int, window: int, limit: int) -> int | None:
    """This request's slot in the owner's count for `window`: from this process's lease, else
    from a new lease (the cache's round trip made outside the lock)."""
    with _lock:
        lease = _leases.get(owner_id)
        if lease is not None and lease[0] == window:
            _, slot, last = lease
            if slot <= last or last > limit:  # a slot of the lease, or the window is over its limit
                _leases[owner_id] = (window, slot + 1, last)
                return slot
    size = lease_size(limit)
    last = cache_count(f"api-rate:{owner_id}:{window}", timeout=WINDOW_SECONDS + 1, amount=size)
    if last is None:
        return None
    with _lock:
        _leases[owner_id] = (window, last - size + 2, last)
    return last - size + 1
