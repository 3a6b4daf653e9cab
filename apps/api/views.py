"""Base view of the native API: authentication, the tenant a request acts in, idempotency."""

import hashlib
from functools import wraps

from django.db import transaction
from rest_framework.exceptions import Throttled
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.api.authentication import SecretKeyAuthentication
from apps.api.ratelimit import RateLimit, rate_limit_count
from apps.core.errors import InvalidInput
from apps.events import idempotency
from apps.tenants.models import Tenant
from apps.tenants.selectors import tenant_descendant_ids, tenant_get_cached

# Tests set this to hold a request between claiming its key and doing its work.
after_idempotency_claim = None


class TenantAPIView(APIView):
    """Every /api/v1 view. `self.tenant` is the key's tenant, or a sub-tenant named by
    `tenant` (a slug) in the JSON body of a write or the query string of a read."""

    authentication_classes = [SecretKeyAuthentication]
    permission_classes = [IsAuthenticated]
    rate_limit: RateLimit | None = None

    def initial(self, request, *args, **kwargs):
        # Keep the raw body before DRF parses it: Idempotency-Key compares request bodies.
        self.raw_body = request._request.body
        super().initial(request, *args, **kwargs)
        for name, value in [*kwargs.items(), *request.query_params.items()]:
            if "\x00" in str(value):  # PostgreSQL cannot compare or store NUL characters
                raise InvalidInput.field(name, "NUL characters are not accepted.")
        self.tenant = self._resolve_tenant(request)

    def check_throttles(self, request):
        """The key's tenant's rate limit (apps/api/ratelimit.py), counted after authentication."""
        self.rate_limit = rate_limit_count(tenant_get_cached(tenant_id=request.auth.tenant_id))
        if self.rate_limit is not None and self.rate_limit.exceeded:
            raise Throttled(detail=self.rate_limit.message)  # Retry-After: finalize_response

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if self.rate_limit is not None:
            for name, value in self.rate_limit.headers(refused=response.status_code == 429).items():
                response[name] = value
        return response

    def _resolve_tenant(self, request) -> Tenant:
        own = tenant_get_cached(tenant_id=request.auth.tenant_id)
        if request.method in ("POST", "PUT", "PATCH"):
            slug = request.data.get("tenant") if isinstance(request.data, dict) else None
        else:
            slug = request.query_params.get("tenant")
        if not slug or slug == own.slug:
            return own
        child = Tenant.objects.filter(slug=slug).first() if isinstance(slug, str) else None
        if child is None or child.pk not in tenant_descendant_ids(tenant_ids=[own.pk]):
            raise InvalidInput.field("tenant", "Not a sub-tenant this API key may act for.")
        return child


def idempotent(handler):
    """Make a POST handler honour `Idempotency-Key` (see apps/events/idempotency.py)."""

    @wraps(handler)
    def wrapper(view: TenantAPIView, request, *args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return handler(view, request, *args, **kwargs)
        if not 1 <= len(key) <= 255:
            raise InvalidInput.field("Idempotency-Key", "Must be 1 to 255 characters.")
        claim = idempotency.idempotency_begin(
            tenant=view.tenant, key=key, request_hash=hashlib.sha256(view.raw_body).hexdigest()
        )
        if isinstance(claim, idempotency.Replay):
            return Response(claim.body, status=claim.status, headers={"Idempotency-Replayed": "true"})
        if after_idempotency_claim is not None:
            after_idempotency_claim(request)
        try:
            with transaction.atomic():
                response = handler(view, request, *args, **kwargs)
                if response.status_code < 400:
                    idempotency.idempotency_finish(
                        record=claim, status=response.status_code, body=response.data)
        except BaseException:
            idempotency.idempotency_abandon(record=claim)
            raise
        if response.status_code >= 400:
            idempotency.idempotency_abandon(record=claim)
        return response

    return wrapper
