"""The one interface every provider implements (after healthchecks' hc/api/transports.py)."""

from dataclasses import dataclass, field


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
