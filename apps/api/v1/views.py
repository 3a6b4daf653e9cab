from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response

from apps.api.errors import error_body
from apps.api.v1 import serializers as s
from apps.api.views import TenantAPIView, idempotent
from apps.core.errors import InvalidInput
from apps.events import native
from apps.recipients import services as recipients
from apps.recipients.models import Recipient
from apps.recipients.selectors import recipient_get

ERRORS = {code: OpenApiResponse(s.ErrorSerializer, description=text) for code, text in {
    400: "Invalid input; `fields` names each JSON path at fault.",
    401: "Missing, unknown or revoked API key.",
    404: "No such recipient in this tenant.",
}.items()}
IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
    description="Up to 255 characters. A retry with the same key and body replays the first "
                "response (header `Idempotency-Replayed: true`) for 24 h; another body → 422; "
                "while the first request is in flight → 409.",
)
TENANT_QUERY = OpenApiParameter("tenant", str, description="Slug of a sub-tenant to act in.")
PROFILE_EXAMPLE = {"email": "ada@example.com", "phone": "+14155550101", "locale": "en-US",
                   "timezone": "America/New_York", "attributes": {"plan": "pro", "old_flag": None}}
RECIPIENT_EXAMPLE = OpenApiExample("Recipient", response_only=True, status_codes=["200", "201"], value={
    "external_id": "user-1", "email": "ada@example.com", "phone": "+14155550101", "locale": "en-US",
    "timezone": "America/New_York", "attributes": {"plan": "pro"},
    "created_at": "2026-11-23T10:00:00+00:00", "updated_at": "2026-11-23T10:05:00+00:00"})
NOT_FOUND_EXAMPLE = OpenApiExample("Unknown recipient", response_only=True, status_codes=["404"], value={
    "error": {"type": "not_found", "message": "No recipient with external_id 'nobody'.", "fields": {}}})
EVENT_EXAMPLE = {"name": "order.completed", "recipient": "user-1",
                 "properties": {"order_id": "A-1001", "total": 42.5},
                 "timestamp": "2026-11-23T10:00:00Z"}


def recipient_data(recipient: Recipient) -> dict:
    return {
        "external_id": recipient.external_id, "email": recipient.email, "phone": recipient.phone,
        "locale": recipient.locale, "timezone": recipient.timezone,
        "attributes": recipient.attributes,
        "created_at": recipient.created_at.isoformat(), "updated_at": recipient.updated_at.isoformat(),
    }


def _object(data) -> dict:
    if not isinstance(data, dict):
        raise InvalidInput.field("body", "Must be a JSON object.")
    return data


class RecipientDetailView(TenantAPIView):
    @extend_schema(operation_id="recipient_get", summary="Read a recipient's profile",
                   parameters=[TENANT_QUERY], responses={200: s.RecipientSerializer, **ERRORS},
                   examples=[RECIPIENT_EXAMPLE, NOT_FOUND_EXAMPLE])
    def get(self, request, external_id: str):
        return Response(recipient_data(recipient_get(tenant=self.tenant, external_id=external_id)))

    @extend_schema(
        operation_id="recipient_put", summary="Create or update a recipient's profile",
        description="Fields given replace the stored ones (null clears them); `attributes` merge, "
                    "and an attribute set to null is removed.",
        request=s.RecipientWriteSerializer,
        responses={200: s.RecipientSerializer, 201: s.RecipientSerializer, **ERRORS},
        examples=[OpenApiExample("Profile", value=PROFILE_EXAMPLE, request_only=True), RECIPIENT_EXAMPLE,
                  OpenApiExample("Invalid", response_only=True, status_codes=["400"], value={"error": {
                      "type": "invalid_request", "message": "Invalid profile.",
                      "fields": {"timezone": ["Mars/Base is not an IANA time zone name."]}}})],
    )
    def put(self, request, external_id: str):
        profile = recipients.profile_validate(_object(request.data))
        recipient, created = recipients.recipient_upsert(
            tenant=self.tenant, external_id=external_id, profile=profile)
        return Response(recipient_data(recipient), status=201 if created else 200)

    @extend_schema(operation_id="recipient_erase", summary="Erase a recipient's personal data",
                   description="Profile, aliases and events are erased; the external id is freed.",
                   parameters=[TENANT_QUERY], responses={204: None, **ERRORS},
                   examples=[NOT_FOUND_EXAMPLE])
    def delete(self, request, external_id: str):
        recipients.recipient_erase(recipient=recipient_get(tenant=self.tenant, external_id=external_id))
        return Response(status=204)


class EventCreateView(TenantAPIView):
    @extend_schema(
        operation_id="event_create", summary="Track an event",
        description="The event is committed before `202` is answered; journeys pick it up.",
        request=s.EventSerializer, parameters=[IDEMPOTENCY_KEY],
        responses={202: s.EventAcceptedSerializer, **ERRORS},
        examples=[
            OpenApiExample("By external id", value=EVENT_EXAMPLE, request_only=True),
            OpenApiExample("With an inline profile", request_only=True, value={
                **EVENT_EXAMPLE, "recipient": {"external_id": "user-9", "email": "new@example.com"}}),
            OpenApiExample("Accepted", value={"id": 1234}, response_only=True, status_codes=["202"]),
        ],
    )
    @idempotent
    def post(self, request):
        event = native.parse_event(_object(request.data))
        [event_id] = native.events_ingest(tenant=self.tenant, events=[event])
        return Response({"id": event_id}, status=202)


class EventBatchView(TenantAPIView):
    @extend_schema(
        operation_id="event_batch", summary="Track up to 1,000 events",
        description="Valid events are stored, invalid ones reported by index; `400` only when "
                    "none is valid.",
        request=s.EventBatchSerializer, parameters=[IDEMPOTENCY_KEY],
        responses={202: s.BatchResultSerializer, **ERRORS},
        examples=[
            OpenApiExample("Two events", request_only=True, value={"events": [
                EVENT_EXAMPLE, {"name": "cart.viewed", "recipient": "user-2"}]}),
            OpenApiExample("One rejected", response_only=True, status_codes=["202"], value={
                "accepted": 1, "rejected": 1, "results": [
                    {"index": 0, "id": 1235},
                    {"index": 1, "error": {"type": "invalid_request", "message": "Invalid event",
                                           "fields": {"events[1].name": ["This field is required."]}}},
                ]}),
        ],
    )
    @idempotent
    def post(self, request):
        items = _object(request.data).get("events")
        if not isinstance(items, list) or not 1 <= len(items) <= native.MAX_BATCH:
            raise InvalidInput.field("events", f"Must be a list of 1 to {native.MAX_BATCH} events.")
        results: list[dict] = [{} for _ in items]
        parsed, errors = [], {}
        for index, raw in enumerate(items):
            try:
                parsed.append((index, native.parse_event(raw, prefix=f"events[{index}]")))
            except InvalidInput as exc:
                results[index] = {"index": index, **error_body(exc.error_type, exc.message, exc.fields)}
                errors |= exc.fields
        if not parsed:
            raise InvalidInput("No valid event in the batch.", fields=errors)
        ids = native.events_ingest(tenant=self.tenant, events=[event for _, event in parsed])
        for (index, _), event_id in zip(parsed, ids, strict=True):
            results[index] = {"index": index, "id": event_id}
        return Response({"accepted": len(parsed), "rejected": len(items) - len(parsed),
                         "results": results}, status=202)
