"""Templates through the API: list, read, and render with given data (for engineers' tests).
Editing and publishing happen in the admin only."""

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.response import Response

from apps.api.v1.views import ERRORS, TENANT_QUERY, _object
from apps.api.views import TenantAPIView
from apps.content import services
from apps.content.models import Template, TemplateVersion
from apps.core import parsing
from apps.core.errors import InvalidInput, NotFound
from apps.messaging.models import Channel
from apps.recipients import services as recipients
from apps.recipients.selectors import recipient_get

TEMPLATE_EXAMPLE = {
    "key": "cart-reminder", "name": "Cart reminder", "category": "cart", "tenant": "acme",
    "version": 3, "published_at": "2026-11-23T10:00:00+00:00", "channels": ["email", "sms"],
    "locales": ["de"], "updated_at": "2026-11-23T09:58:00+00:00",
}
RENDER_EXAMPLE = {"recipient": "user-1", "data": {"cart": {"total": 42.5, "items": [{"name": "Shoes"}]}},
                  "channels": ["sms"]}


def _iso(value):
    return value.isoformat() if value else None


def _visible(tenant) -> dict[str, Template]:
    """Templates the tenant sends with: its own and its parents' (the nearest of a key wins)."""
    lineage = tenant.lineage()
    order = {t.pk: n for n, t in enumerate(lineage)}
    rows = Template.objects.filter(tenant__in=lineage).select_related("published_version", "tenant")
    found: dict[str, Template] = {}
    for template in sorted(rows, key=lambda t: (t.key, order[t.tenant_id])):
        found.setdefault(template.key, template)
    return found


def template_data(template: Template, *, full: bool = False) -> dict:
    version = template.published_version
    source = version.source if version else None
    data = {
        "key": template.key, "name": template.name, "category": template.category,
        "tenant": template.tenant.slug, "version": version.number if version else None,
        "published_at": _iso(version.published_at) if version else None,
        "channels": sorted(source["content"]) if source else [],
        "locales": sorted(source["locales"]) if source else [],
        "updated_at": _iso(template.updated_at),
    }
    if full:
        data |= {"description": template.description, "strict": template.strict,
                 "content": source["content"] if source else None,
                 "locale_content": source["locales"] if source else None}
    return data


def _template(tenant, key: str) -> Template:
    template = _visible(tenant).get(key)
    if template is None:
        raise NotFound(f"No template with key {key!r}.")
    return template


class TemplateListView(TenantAPIView):
    @extend_schema(operation_id="template_list", summary="List templates",
                   description="The tenant's templates and those it inherits from parent tenants, "
                               "with the live version of each (null: never published).",
                   parameters=[TENANT_QUERY], responses={200: dict, **ERRORS},
                   examples=[OpenApiExample("Templates", response_only=True, value={"templates": [
                       TEMPLATE_EXAMPLE]})])
    def get(self, request):
        return Response({"templates": [template_data(t) for t in _visible(self.tenant).values()]})


class TemplateDetailView(TenantAPIView):
    @extend_schema(operation_id="template_get", summary="Read a template's live version",
                   description="`content` holds the Liquid sources of the live version per channel; "
                               "`locale_content` those of each locale variant.",
                   parameters=[TENANT_QUERY], responses={200: dict, **ERRORS},
                   examples=[OpenApiExample("Template", response_only=True, value={
                       **TEMPLATE_EXAMPLE, "description": "", "strict": False,
                       "content": {"sms": {"text": "Your cart ({{ data.cart.total | money: '$' }}) waits."}},
                       "locale_content": {"de": {"sms": {"text": "Ihr Warenkorb wartet."}}}})])
    def get(self, request, key: str):
        return Response(template_data(_template(self.tenant, key), full=True))


class TemplateRenderView(TenantAPIView):
    @extend_schema(
        operation_id="template_render", summary="Render a template with given data",
        description="Renders the live version (or `version`, a number) exactly as a send would, "
                    "without sending. `recipient` is a stored recipient's external id or an inline "
                    "profile (`locale`, `attributes`, …; not stored). `channels` defaults to every "
                    "channel of the locale variant chosen.",
        request=dict, responses={200: dict, **ERRORS},
        examples=[OpenApiExample("Render the SMS", value=RENDER_EXAMPLE, request_only=True),
                  OpenApiExample("Rendered", response_only=True, value={
                      "key": "cart-reminder", "version": 3, "locale": "",
                      "content": {"sms": {"text": "Acme: your cart ($42.50) is waiting."}}})],
    )
    def post(self, request, key: str):
        body = _object(request.data)
        template = _template(self.tenant, key)
        version = self._version(template, body.get("version"))
        channels = self._channels(body.get("channels"))
        recipient = self._recipient(body.get("recipient"))
        locale = parsing.string(body, "locale", max_length=35)
        chosen, content = services.template_render(
            tenant=self.tenant, version=version, channels=channels, recipient=recipient,
            data=parsing.obj(body, "data"), locale=locale,
            message={"id": "render-test", "template": key, "unsubscribe_url": "", "preferences_url": ""})
        return Response({"key": key, "version": version.number, "locale": chosen, "content": content})

    def _version(self, template: Template, number) -> TemplateVersion:
        if number is None:
            if template.published_version is None:
                raise NotFound(f"Template {template.key!r} has no published version.")
            return template.published_version
        if isinstance(number, bool) or not isinstance(number, int):
            raise InvalidInput.field("version", "A version number.")
        version = template.versions.filter(number=number).first()
        if version is None:
            raise InvalidInput.field("version", f"Template {template.key!r} has no version {number}.")
        return version

    def _channels(self, value) -> list[str] | None:
        if value is None:
            return None
        if not isinstance(value, list) or not value or any(c not in Channel.values for c in value):
            raise InvalidInput.field("channels", f"A list of channels among {', '.join(Channel.values)}.")
        return list(dict.fromkeys(value))

    def _recipient(self, value) -> dict:
        if value is None:
            return {}
        if isinstance(value, str) and value.strip():
            return services.recipient_profile(recipient_get(tenant=self.tenant, external_id=value))
        if isinstance(value, dict):
            profile = recipients.profile_validate(value, prefix="recipient")
            return {"external_id": str(value.get("external_id", "")), **profile}
        raise InvalidInput.field("recipient", "An external id, or a profile object.")

