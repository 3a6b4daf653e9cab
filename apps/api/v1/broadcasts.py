from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.response import Response

from apps.api.v1.views import ERRORS, IDEMPOTENCY_KEY, TENANT_QUERY, _object
from apps.api.views import TenantAPIView, idempotent
from apps.broadcasts import services
from apps.broadcasts.models import Broadcast
from apps.broadcasts.selectors import broadcast_progress
from apps.core import parsing
from apps.core.errors import InvalidInput, NotFound
from apps.messaging.models import Channel
from apps.tenants.models import ApiKey

CREATE_EXAMPLE = {"template": "november-news", "segment": "active-customers",
                  "send_at": "2026-11-25T09:00:00Z", "local_time": True}
PROGRESS_EXAMPLE = {
    "id": 42, "name": "November news", "template": "november-news", "segment": "active-customers",
    "channels": ["email", "sms"], "category": "marketing", "priority": "normal",
    "send_at": "2026-11-25T09:00:00+00:00", "local_time": True, "status": "sending",
    "targeted": 100000, "created": 100000, "queued": 31250, "sent": 66400, "suppressed": 2100,
    "failed": 250, "cancelled": 0, "percent": 68,
    "started_at": "2026-11-24T19:00:00+00:00", "finished_at": None}


def _iso(value):
    return value.isoformat() if value else None


def broadcast_data(broadcast: Broadcast) -> dict:
    return {"id": broadcast.pk, "name": broadcast.name, "template": broadcast.template_key,
            "segment": broadcast.segment.key if broadcast.segment_id else None,
            "channels": broadcast.channels, "category": broadcast.category, "priority": broadcast.priority,
            "send_at": _iso(broadcast.send_at), "local_time": broadcast.local_time,
            **broadcast_progress(broadcast=broadcast),
            "started_at": _iso(broadcast.started_at), "finished_at": _iso(broadcast.finished_at)}


def _broadcast(tenant, broadcast_id) -> Broadcast:
    broadcast = Broadcast.objects.select_related("segment").filter(tenant=tenant, pk=broadcast_id).first()
    if broadcast is None:
        raise NotFound(f"No broadcast {broadcast_id}.")
    return broadcast


def _external_ids(body: dict) -> list[str] | None:
    value = body.get("recipients")
    if value is None:
        return None
    if not isinstance(value, list) or not 0 < len(value) <= services.MAX_INLINE_RECIPIENTS:
        raise InvalidInput.field("recipients", f"A list of 1 to {services.MAX_INLINE_RECIPIENTS:,} "
                                 "external ids.")
    errors = {f"recipients.{n}": ["An external id (a non-empty string)."]
              for n, item in enumerate(value) if not isinstance(item, str) or not item.strip()}
    if errors:
        raise InvalidInput("Invalid recipients", fields=dict(list(errors.items())[:100]))
    return value


def _channels(body: dict) -> list[str] | None:
    value = body.get("channels")
    if value is None:
        return None
    if not isinstance(value, list) or not value or any(c not in Channel.values for c in value) \
            or len(set(value)) != len(value):
        raise InvalidInput.field("channels", f"A list of distinct channels: {', '.join(Channel.values)}.")
    return value


class BroadcastCreateView(TenantAPIView):
    @extend_schema(
        operation_id="broadcast_create", summary="Send a template to a segment or a list of recipients",
        description="`template`: a published template's key. The audience: `segment` (a segment key) "
                    "or `recipients` (up to 10,000 external ids of existing recipients), not both. "
                    "Without `send_at` it starts now. With `local_time`, `send_at`'s date and time as "
                    "written in UTC are read as a wall-clock time in each recipient's zone (the "
                    "tenant's default zone when they have none); a zone where that moment has passed "
                    "gets its messages now. `channels` (fallback order), `category` and `priority` "
                    "default to the template's. Every message goes through policy (preferences, "
                    "quiet hours, caps). `202` with the broadcast; follow it with `GET`.",
        parameters=[IDEMPOTENCY_KEY], request=dict, responses={202: dict, **ERRORS},
        examples=[
            OpenApiExample("A segment at 09:00 local time", value=CREATE_EXAMPLE, request_only=True),
            OpenApiExample("A list, now", request_only=True,
                           value={"template": "november-news", "recipients": ["user-1", "user-2"]}),
            OpenApiExample("Accepted", response_only=True, status_codes=["202"],
                           value={**PROGRESS_EXAMPLE, "status": "scheduled", "targeted": 0, "created": 0,
                                  "queued": 0, "sent": 0, "suppressed": 0, "failed": 0, "percent": 0,
                                  "started_at": None}),
            OpenApiExample("Unknown external ids", response_only=True, status_codes=["400"], value={
                "error": {"type": "invalid_request", "message": "Invalid broadcast: recipients.1; recipients",
                          "fields": {"recipients.1": ["No recipient has the external id 'ghost'."],
                                     "recipients": ["1 unknown external id(s)."]}}}),
        ],
    )
    @idempotent
    def post(self, request):
        body = _object(request.data)
        errors, values = {}, {}
        for name, parse in [
            ("template", lambda: parsing.string(body, "template", required=True, max_length=100)),
            ("segment", lambda: parsing.string(body, "segment", max_length=100)),
            ("name", lambda: parsing.string(body, "name", max_length=200)),
            ("category", lambda: parsing.string(body, "category", max_length=64)),
            ("priority", lambda: parsing.string(body, "priority", max_length=10)),
            ("recipients", lambda: _external_ids(body)), ("channels", lambda: _channels(body)),
            ("data", lambda: parsing.obj(body, "data")),
            ("send_at", lambda: parsing.timestamp(body, "send_at")),
        ]:
            try:
                values[name] = parse()
            except InvalidInput as error:
                errors.update(error.fields)
        local_time = body.get("local_time", False)
        if not isinstance(local_time, bool):
            errors["local_time"] = ["true or false."]
        if errors:
            raise InvalidInput("Invalid broadcast: " + "; ".join(errors), fields=errors)
        broadcast = services.broadcast_create(
            tenant=self.tenant, name=values["name"], template_key=values["template"],
            segment_key=values["segment"], external_ids=values["recipients"], channels=values["channels"],
            category=values["category"], priority=values["priority"], data=values["data"],
            send_at=values["send_at"], local_time=local_time, test_mode=request.auth.mode == ApiKey.Mode.TEST)
        broadcast = services.broadcast_start(broadcast=broadcast)
        return Response(broadcast_data(broadcast), status=202)


class BroadcastDetailView(TenantAPIView):
    @extend_schema(operation_id="broadcast_get", summary="A broadcast's status and progress",
                   description="Counts of its messages by state (cached for a few seconds): `targeted` "
                               "(the audience), `created` (messages made so far), `queued` (scheduled, "
                               "queued or sending), `sent`, `suppressed` (by policy), `failed`, "
                               "`cancelled`; `percent` done.",
                   parameters=[TENANT_QUERY], responses={200: dict, **ERRORS},
                   examples=[OpenApiExample("Sending", response_only=True, value=PROGRESS_EXAMPLE)])
    def get(self, request, broadcast_id: int):
        return Response(broadcast_data(_broadcast(self.tenant, broadcast_id)))


def _action_view(action, summary: str, operation_id: str):
    class View(TenantAPIView):
        @extend_schema(operation_id=operation_id, summary=summary, request=None, parameters=[IDEMPOTENCY_KEY],
                       responses={200: dict, 409: dict, **ERRORS})
        @idempotent
        def post(self, request, broadcast_id: int):
            broadcast = action(broadcast=_broadcast(self.tenant, broadcast_id))
            return Response(broadcast_data(broadcast))

    View.__name__ = View.__qualname__ = f"Broadcast{operation_id.split('_')[1].title()}View"
    return View


BroadcastCancelView = _action_view(
    services.broadcast_cancel, "Cancel a broadcast: the fan-out stops, unsent messages are cancelled",
    "broadcast_cancel")
BroadcastPauseView = _action_view(
    services.broadcast_pause, "Pause a sending broadcast: unsent messages are held", "broadcast_pause")
BroadcastResumeView = _action_view(services.broadcast_resume, "Resume a paused broadcast", "broadcast_resume")
