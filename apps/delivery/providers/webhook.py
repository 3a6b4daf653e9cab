"""POST JSON to a tenant's endpoint, signed per the Standard Webhooks spec.

https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
Credentials: {"secrets": ["whsec_…", …]}; with two secrets (a rotation) both signatures are sent.
Settings: {"url": "https://…", "timeout": seconds}.
"""

import base64
import hashlib
import hmac
import json
import time

from apps.delivery.http import HttpError, safe_post
from apps.delivery.providers.base import Provider, ProviderError, ProviderResult, Rendered, classify


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def post_json(url: str, body: bytes, headers: dict, *, timeout: float) -> tuple[int, str]:
    """POST through the safe client; transport failures become ProviderErrors."""
    try:
        response = safe_post(url, body=body, headers={"Content-Type": "application/json", **headers},
                             timeout=timeout)
    except HttpError as exc:
        raise ProviderError(str(exc), ambiguous=exc.sent) from None
    excerpt = response.body[:500].decode(errors="replace")
    error = classify(response.status, excerpt, response.headers.get("Retry-After"))
    if error is not None:
        raise error
    return response.status, excerpt


class WebhookProvider(Provider):
    kind = "webhook"
    channels = frozenset({"webhook"})

    def send(self, rendered: Rendered, *, idempotency_key: str) -> ProviderResult:
        url = self.config.settings.get("url", "")
        body = json.dumps(rendered.content.get("body", {}), separators=(",", ":")).encode()
        timestamp = int(time.time())
        secrets = self.config.credentials.get("secrets", [])
        signature = " ".join(sign(s, idempotency_key, timestamp, body) for s in secrets)
        headers = {"webhook-id": idempotency_key, "webhook-timestamp": str(timestamp),
                   **({"webhook-signature": signature} if signature else {})}
        status, excerpt = post_json(url, body, headers,
                                    timeout=float(self.config.settings.get("timeout", 15)))
        return ProviderResult(provider_message_id=idempotency_key, response_code=status,
                              response_excerpt=excerpt, request_summary={"url": url, "bytes": len(body)})
