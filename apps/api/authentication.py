"""API keys: `Authorization: Bearer <secret key>` on /api/v1; write keys on the Segment endpoints."""

import base64
import binascii

from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from apps.tenants.models import ApiKey
from apps.tenants.services import ApiKeyIdentity, api_key_authenticate


class ApiClient:
    """request.user for a request made with an API key."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, identity: ApiKeyIdentity):
        self.identity = identity


def identity_from_token(token: str, *, kinds: set[str]) -> ApiKeyIdentity:
    identity = api_key_authenticate(token=token.strip())
    if identity is None:
        raise AuthenticationFailed("Unknown or revoked API key.")
    if identity.kind not in kinds:
        raise AuthenticationFailed(
            "A write key works only on the Segment endpoints (/v1/…); use a secret key here.")
    return identity


def write_key_from_basic(header: str) -> str | None:
    """The user name of an HTTP Basic Authorization header (Segment sends the write key there)."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(encoded, validate=True).decode().partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return None


class SecretKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None  # → 401 "Authentication credentials were not provided."
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationFailed("Use 'Authorization: Bearer <secret API key>'.")
        identity = identity_from_token(token, kinds={ApiKey.Kind.SECRET})
        return ApiClient(identity), identity

    def authenticate_header(self, request):
        return 'Bearer realm="signalbox"'
