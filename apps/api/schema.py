"""OpenAPI description of the API-key authentication (loaded by ApiConfig.ready)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class SecretKeyScheme(OpenApiAuthenticationExtension):
    target_class = "apps.api.authentication.SecretKeyAuthentication"
    name = "SecretKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "A secret API key: `Authorization: Bearer sb_sk_live_…`"}
