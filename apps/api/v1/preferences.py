from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.response import Response

from apps.api.v1.views import ERRORS, TENANT_QUERY, _object
from apps.api.views import TenantAPIView
from apps.policy import services
from apps.policy.preferences import preference_apply, preference_data
from apps.policy.selectors import PolicyLookup
from apps.recipients.selectors import recipient_get

EXAMPLE = {"categories": {"marketing": {"email": False, "sms": False}, "product-updates": {"push": True}},
           "quiet_hours": {"start": "22:00", "end": "07:30"}, "commercial_unsubscribed": False}


class PreferencesView(TenantAPIView):
    """A recipient's categories × channels, quiet hours and commercial unsubscribe."""

    @extend_schema(operation_id="preferences_get", summary="A recipient's preferences",
                   description="Every category of the tenant, each channel on or off for this recipient.",
                   parameters=[TENANT_QUERY], responses={200: dict, **ERRORS})
    def get(self, request, external_id: str):
        recipient = recipient_get(tenant=self.tenant, external_id=external_id)
        return Response(preference_data(preference=services.preference_get(recipient=recipient),
                                        policy=PolicyLookup()(tenant=self.tenant)))

    @extend_schema(
        operation_id="preferences_put", summary="Change a recipient's preferences",
        description="Fields given replace the stored ones; `quiet_hours: null` uses the tenant's. "
                    "Muting a required category is refused (400 naming it). Applies to the next message.",
        request=dict, responses={200: dict, **ERRORS},
        examples=[OpenApiExample("Mute marketing email and SMS", value=EXAMPLE, request_only=True)])
    def put(self, request, external_id: str):
        recipient = recipient_get(tenant=self.tenant, external_id=external_id)
        policy = PolicyLookup()(tenant=self.tenant)
        preference = preference_apply(preference=services.preference_get(recipient=recipient),
                                      policy=policy, raw=_object(request.data))
        services.preference_save(preference=preference)
        return Response(preference_data(preference=preference, policy=policy))
