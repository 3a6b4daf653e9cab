"""The Segment HTTP tracking API, so Segment and RudderStack SDKs work unmodified.

https://segment.com/docs/connections/sources/catalog/libraries/server/http-api/
Plain Django views rather than DRF: this is the hot path of ingestion (benchmarked in bench/).
"""

import json

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import AuthenticationFailed

from apps.api.authentication import identity_from_token, write_key_from_basic
from apps.api.errors import error_json
from apps.api.ratelimit import rate_limit_count
from apps.core import parsing
from apps.core.errors import InvalidInput
from apps.events.segment import MAX_BATCH_BYTES, MAX_EVENT_BYTES, parse_call, segment_ingest
from apps.tenants.models import ApiKey
from apps.tenants.selectors import tenant_get_cached

CONTENT_TYPES = {"application/json", "text/plain"}


def _too_large(limit_name: str, limit: int, path: str) -> JsonResponse:
    message = f"{path} is larger than Segment's {limit // 1024} KB {limit_name} limit."
    return error_json(400, "payload_too_large", message, {path: [message]})


@csrf_exempt
def segment_view(request, kind: str | None = None):
    if request.method != "POST":
        return error_json(405, "method_not_allowed", "Use POST.")
    if request.content_type not in CONTENT_TYPES:
        return error_json(415, "unsupported_media_type", "Send Content-Type: application/json.")
    limit, limit_name = (MAX_EVENT_BYTES, "per-event") if kind else (MAX_BATCH_BYTES, "per-batch")
    if int(request.META.get("CONTENT_LENGTH") or 0) > limit or len(request.body) > limit:
        return _too_large(limit_name, limit, "body" if kind else "batch")
    try:
        payload = parsing.json_loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        return error_json(400, "malformed_json", f"The body is not valid JSON ({exc}).")
    if not isinstance(payload, dict):
        return error_json(400, "invalid_request", "The body must be a JSON object.",
                          {"body": ["Must be a JSON object."]})
    token = write_key_from_basic(request.META.get("HTTP_AUTHORIZATION", "")) or payload.get("writeKey")
    if not isinstance(token, str) or not token:
        return error_json(401, "not_authenticated", "Send the write key as the HTTP Basic user name.")
    try:
        identity = identity_from_token(token, kinds={ApiKey.Kind.WRITE, ApiKey.Kind.SECRET})
    except AuthenticationFailed as exc:
        return error_json(401, "authentication_failed", str(exc.detail))
    tenant = tenant_get_cached(tenant_id=identity.tenant_id)
    rate_limit = rate_limit_count(tenant)
    response = _ingest(tenant, payload, kind, request.body, rate_limit)
    if rate_limit is not None:
        for name, value in rate_limit.headers(refused=response.status_code == 429).items():
            response[name] = value
    return response


def _ingest(tenant, payload: dict, kind: str | None, body: bytes, rate_limit) -> JsonResponse:
    if rate_limit is not None and rate_limit.exceeded:
        return error_json(429, "throttled", rate_limit.message)
    try:
        calls, rejected = _parse(payload, kind, body)
    except InvalidInput as exc:
        return error_json(400, exc.error_type, exc.message, exc.fields)
    if not calls:
        fields = {k: v for r in rejected for k, v in r["error"]["fields"].items()}
        return error_json(400, "invalid_request", "No valid call in the batch.", fields)
    segment_ingest(tenant=tenant, calls=calls)
    return JsonResponse({"success": True, **({"rejected": rejected} if rejected else {})})


def _parse(payload: dict, kind: str | None, body: bytes):
    """One call (/v1/track …) or a batch (/v1/batch): the valid calls, and the rejected by index."""
    if kind:
        return [parse_call(payload, prefix="", kind=kind)], []
    batch = payload.get("batch")
    if not isinstance(batch, list) or not batch:
        raise InvalidInput.field("batch", "Must be a non-empty list of calls.")
    sent_at = parsing.timestamp(payload, "sentAt")
    check_sizes = len(body) > MAX_EVENT_BYTES  # otherwise no single call can exceed the limit
    calls, rejected = [], []
    for index, raw in enumerate(batch):
        path = f"batch[{index}]"
        try:
            if check_sizes and len(json.dumps(raw).encode()) > MAX_EVENT_BYTES:
                raise InvalidInput.field(
                    path, f"Larger than Segment's {MAX_EVENT_BYTES // 1024} KB per-event limit.")
            calls.append(parse_call(raw, prefix=path, sent_at=sent_at))
        except InvalidInput as exc:
            rejected.append({"index": index, "error": {"type": exc.error_type, "message": exc.message,
                                                        "fields": exc.fields}})
    return calls, rejected
