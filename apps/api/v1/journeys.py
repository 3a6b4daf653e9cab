from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.response import Response

from apps.api.v1.views import ERRORS, IDEMPOTENCY_KEY, _object
from apps.api.views import TenantAPIView, idempotent
from apps.core import parsing
from apps.journeys.services import journey_runs_cancel
from apps.recipients.selectors import recipient_get


class JourneyCancelView(TenantAPIView):
    @extend_schema(
        operation_id="journeys_cancel", summary="End the journey runs entered with a cancellation key",
        description="Every live run of the tenant's journeys whose trigger event carried "
                    "`cancellation_key` (only `recipient`'s, if given) ends now; its scheduled steps "
                    "never run.",
        parameters=[IDEMPOTENCY_KEY], request=dict, responses={200: dict, **ERRORS},
        examples=[OpenApiExample("By order", request_only=True,
                                 value={"cancellation_key": "order-A-1", "recipient": "user-1"})],
    )
    @idempotent
    def post(self, request):
        body = _object(request.data)
        key = parsing.string(body, "cancellation_key", required=True)
        external_id = parsing.string(body, "recipient")
        recipient = recipient_get(tenant=self.tenant, external_id=external_id) if external_id else None
        cancelled = journey_runs_cancel(tenant=self.tenant, cancellation_key=key, recipient=recipient)
        return Response({"cancelled": cancelled})
