from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework.response import Response

from apps.api.v1.views import ERRORS, IDEMPOTENCY_KEY, TENANT_QUERY, _object
from apps.api.views import TenantAPIView, idempotent
from apps.content.services import template_get_published
from apps.core import parsing
from apps.core.errors import InvalidInput, NotFound
from apps.messaging import intake, services
from apps.messaging.models import Message
from apps.policy.selectors import PolicyLookup
from apps.recipients import services as recipients
from apps.recipients.selectors import recipient_get
from apps.tenants.models import ApiKey

PAGE_SIZE = 50
SEND_EXAMPLE = {
    "recipient": "user-1", "channels": ["email", "sms"], "category": "billing", "priority": "high",
    "content": {"email": {"subject": "Your receipt", "text": "Thanks for your order."},
                "sms": {"text": "Thanks for your order."}},
    "data": {"order_id": "A-1"}, "expires_at": "2026-11-24T10:00:00Z",
}


def _iso(value):
    return value.isoformat() if value else None


def message_data(message: Message, *, full: bool = False) -> dict:
    data = {
        "id": message.pk, "recipient": message.recipient.external_id, "status": message.status,
        "channels": message.channels, "channel": message.channel or None,
        "category": message.category, "priority": message.priority, "source": message.source,
        "provider": message.provider or None, "provider_message_id": message.provider_message_id or None,
        "attempts": message.attempts, "send_at": _iso(message.send_at),
        "expires_at": _iso(message.expires_at), "sent_at": _iso(message.sent_at),
        "created_at": _iso(message.created_at),
    }
    if full:
        data["timeline"] = [
            {"status": e.status, "reason_code": e.reason_code, "reason": e.reason, "detail": e.detail,
             "at": _iso(e.created_at)} for e in message.timeline.all()]
        data["provider_attempts"] = [
            {"provider": a.provider, "channel": a.channel, "outcome": a.outcome,
             "response_code": a.response_code, "response_excerpt": a.response_excerpt,
             "error_class": a.error_class or None, "duration_ms": a.duration_ms, "at": _iso(a.created_at)}
            for a in message.attempt_rows.all()]
    return data


def _message(tenant, message_id) -> Message:
    message = Message.objects.select_related("recipient").filter(tenant=tenant, pk=message_id).first()
    if message is None:
        raise NotFound(f"No message {message_id}.")
    return message


class MessageListCreateView(TenantAPIView):
    @extend_schema(
        operation_id="message_send", summary="Send a message",
        description="Content per channel (`channels` is an ordered fallback list). `recipient` (an "
                    "external id or an inline profile), or `recipients`: up to 1,000, one message each. "
                    "A future `send_at` schedules it; past `expires_at` it is never sent.",
        parameters=[IDEMPOTENCY_KEY], request=dict, responses={202: dict, **ERRORS},
        examples=[OpenApiExample("Email, else SMS", value=SEND_EXAMPLE, request_only=True),
                  OpenApiExample("Accepted", response_only=True, status_codes=["202"], value={
                      "messages": [{"id": 501, "recipient": "user-1", "status": "queued"}]})],
    )
    @idempotent
    def post(self, request):
        send = intake.parse_send(_object(request.data),
                                 idempotency_key=request.headers.get("Idempotency-Key"))
        if send.fields["template_key"]:  # it is rendered at send time, by the version live then
            try:
                send.use_template(template_get_published(self.tenant, send.fields["template_key"]))
            except NotFound:
                raise InvalidInput.field("template", "No published template has this key.") from None
        category = PolicyLookup()(tenant=self.tenant).category(send.fields["category"])
        if category is None:
            raise InvalidInput.field("category", f"{send.fields['category']!r} is not a category of this "
                                     "tenant (define it in the admin under Policy › Categories).")
        if request.data.get("priority") is None:
            send.fields["priority"] = category.default_priority
        ids = recipients.recipients_resolve_many(
            tenant=self.tenant, external_ids=[external_id for external_id, _ in send.recipients])
        recipients.recipients_apply_profiles(tenant=self.tenant, profiles={
            ids[external_id]: profile for external_id, profile in send.recipients if profile})
        messages = services.message_create_many(messages=send.messages(
            tenant=self.tenant, recipient_ids=ids, test_mode=request.auth.mode == ApiKey.Mode.TEST))
        return Response({"messages": [
            {"id": message.pk, "recipient": external_id, "status": message.status}
            for message, (external_id, _) in zip(messages, send.recipients, strict=True)]}, status=202)

    @extend_schema(
        operation_id="message_history", summary="A recipient's messages, newest first",
        parameters=[OpenApiParameter("recipient", str, required=True, description="external id"),
                    OpenApiParameter("before", int, description="Keyset cursor: the `next` link"),
                    OpenApiParameter("limit", int, description=f"At most {PAGE_SIZE}"), TENANT_QUERY],
        responses={200: dict, **ERRORS},
        examples=[OpenApiExample("A page", response_only=True, value={
            "results": [{"id": 501, "recipient": "user-1", "status": "sent", "channel": "email"}],
            "next": "/api/v1/messages?recipient=user-1&before=501"})],
    )
    def get(self, request):
        params = request.query_params
        external_id = parsing.string(params, "recipient", required=True)
        recipient = recipient_get(tenant=self.tenant, external_id=external_id)
        before, limit = _int(params, "before", None), min(_int(params, "limit", PAGE_SIZE), PAGE_SIZE)
        rows = Message.objects.select_related("recipient").filter(tenant=self.tenant, recipient=recipient)
        if before is not None:
            rows = rows.filter(id__lt=before)
        page = list(rows.order_by("-id")[: limit + 1])
        more = len(page) > limit
        page = page[:limit]
        next_url = (f"/api/v1/messages?recipient={external_id}&before={page[-1].pk}&limit={limit}"
                    if more else None)
        return Response({"results": [message_data(m) for m in page], "next": next_url})


def _int(params, name: str, default):
    value = params.get(name)
    if value is None:
        return default
    if not value.isdigit() or not 0 < int(value) < 2**63:
        raise InvalidInput.field(name, "A positive whole number.")
    return int(value)


class MessageDetailView(TenantAPIView):
    @extend_schema(operation_id="message_get", summary="A message with its full timeline",
                   parameters=[TENANT_QUERY], responses={200: dict, **ERRORS})
    def get(self, request, message_id: int):
        return Response(message_data(_message(self.tenant, message_id), full=True))


class MessageCancelView(TenantAPIView):
    @extend_schema(operation_id="message_cancel", summary="Cancel a scheduled or queued message",
                   request=None, parameters=[IDEMPOTENCY_KEY], responses={200: dict, 409: dict, **ERRORS})
    @idempotent
    def post(self, request, message_id: int):
        message = services.message_cancel(message=_message(self.tenant, message_id))
        return Response(message_data(message))
