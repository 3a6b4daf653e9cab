"""Per-tenant API rate limits: requests per second for all of a tenant's API keys together.

The limit is `Tenant.effective_api_rate_limit()`: the tenant's own, else its nearest ancestor's,
counted together with that ancestor's (sub-tenants never multiply a limit), else
SIGNALBOX_API_RATE_LIMIT for the top tenant's tree; none by default. Only superusers set it.
Requests are counted per limit and calendar second in the shared cache, so every process sees
one count: on Redis one round trip a request, and none for a tenant without a limit. A fixed
window lets a burst of up to twice the limit straddle a second's boundary; what it buys is one
counter instead of a log of timestamps.

A refused request gets 429 with `Retry-After`; every response to a limited tenant carries
`RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds). When the cache cannot
be reached the request is let through: an outage of Redis never refuses API calls.
"""

import math
from dataclasses import dataclass

from apps.core import clock
from apps.core.cache import cache_count
from apps.tenants.models import Tenant

WINDOW_SECONDS = 1


@dataclass(frozen=True)
class RateLimit:
    limit: int
    owner: Tenant  # whose limit it is: the tenant itself or the ancestor it shares a count with
    count: int  # this request's place in its window
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
    count = cache_count(f"api-rate:{owner.pk}:{window}", timeout=WINDOW_SECONDS + 1)
    if count is None:
        return None
    reset = max(math.ceil((window + 1) * WINDOW_SECONDS - now), 1)
    return RateLimit(limit=limit, owner=owner, count=count, reset=reset)
