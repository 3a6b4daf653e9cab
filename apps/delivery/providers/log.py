"""Sends nothing: records what would be sent. For `make dev` and test-mode API keys."""

import logging

from apps.delivery.providers.base import Provider, ProviderResult, Rendered
from apps.messaging.models import Channel

logger = logging.getLogger("signalbox.log_provider")


class LogProvider(Provider):
    kind = "log"
    channels = frozenset(Channel.values)

    def send(self, rendered: Rendered, *, idempotency_key: str) -> ProviderResult:
        logger.info("log provider: %s to %s: %s", rendered.channel, rendered.to, rendered.content)
        return ProviderResult(
            provider_message_id=f"log-{idempotency_key}", response_excerpt="logged, not sent",
            request_summary={"to": rendered.to, "content": rendered.content, "headers": rendered.headers},
        )
