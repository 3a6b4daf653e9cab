"""One error format for the whole API:
`{"error": {"type", "message", "fields": {json.path: [messages]}}}`."""

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.core.errors import SignalboxError


def error_body(error_type: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"type": error_type, "message": message, "fields": fields or {}}}


def error_json(status: int, error_type: str, message: str, fields: dict | None = None) -> JsonResponse:
    """For plain Django views (the Segment endpoints, middleware)."""
    return JsonResponse(error_body(error_type, message, fields), status=status)


def flatten(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail → {"events[3].name": ["This field is required."]}."""
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for key, value in detail.items():
            if isinstance(key, int) or str(key).isdigit():
                path = f"{prefix}[{key}]"
            elif key == "non_field_errors":
                path = prefix or "body"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            out |= flatten(value, path)
        return out
    if isinstance(detail, list) and any(isinstance(d, dict | list) for d in detail):
        out = {}
        for index, value in enumerate(detail):
            out |= flatten(value, f"{prefix}[{index}]")
        return out
    messages = detail if isinstance(detail, list) else [detail]
    return {prefix or "body": [str(m) for m in messages]} if messages else {}


def exception_handler(exc, context):
    if isinstance(exc, SignalboxError):
        return Response(error_body(exc.error_type, exc.message, exc.fields), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("payload_too_large", "The request body is too large."), status=413)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: Django's 500 handling applies
    if isinstance(exc, exceptions.ValidationError):
        fields = flatten(exc.detail)
        message = "Invalid input: " + "; ".join(f"{k}: {v[0]}" for k, v in fields.items())
        response.data = error_body("invalid_request", message, fields)
    elif isinstance(exc, exceptions.ParseError):
        response.data = error_body("malformed_json", f"The body is not valid JSON ({exc.detail}).")
    else:
        response.data = error_body(exc.default_code, str(exc.detail))
    return response
