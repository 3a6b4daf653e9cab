"""The one interface every provider implements (after healthchecks' hc/api/transports.py)."""

from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime

from apps.core import clock


@dataclass(frozen=True)
class Rendered:
    """What to send on one channel to one address, after rendering."""

    channel: str
    to: str
    content: dict
    headers: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderResult:
    provider_message_id: str = ""
    response_code: int | None = None
    response_excerpt: str = ""
    request_summary: dict = field(default_factory=dict)


class ProviderError(Exception):
    """A failed send.

    permanent: retrying cannot help (invalid address, 4xx other than 408/429).
    ambiguous: the provider may have accepted it (timeout after sending): retry the same
    provider with the same idempotency key, never fail over.
    Otherwise the error is safe to fail over to the next provider, or retry later.
    """

    def __init__(self, message: str, *, permanent: bool = False, ambiguous: bool = False,
                 response_code: int | None = None, response_excerpt: str = "",
                 retry_after: float | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.ambiguous = ambiguous
        self.response_code = response_code
        self.response_excerpt = response_excerpt
        self.retry_after = retry_after


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header in seconds: delta-seconds or an HTTP date
    (https://www.rfc-editor.org/rfc/rfc9110#field.retry-after)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - clock.now()).total_seconds())


def classify(status: int, excerpt: str, retry_after: str | None) -> ProviderError | None:
    """An HTTP answer → None (accepted) or the ProviderError it means."""
    if 200 <= status < 300:
        return None
    if status in (408, 429) or status >= 500:
        return ProviderError(f"HTTP {status}", response_code=status, response_excerpt=excerpt,
                             retry_after=retry_after_seconds(retry_after))
    return ProviderError(f"HTTP {status}", permanent=True, response_code=status,
                         response_excerpt=excerpt)


class Provider:
    kind: str = ""
    channels: frozenset[str] = frozenset()

    def __init__(self, config=None):
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name if self.config else self.kind

    def send(self, rendered: Rendered, *, idempotency_key: str) -> ProviderResult:
        raise NotImplementedError

    def test_connection(self) -> str:
        """Check credentials and reachability without sending; raise ProviderError if not."""
        return "ok"

    def config_errors(self) -> list[tuple[str, str]]:
        """(form field, message) for each problem in the configuration; the admin shows them."""
        return []
