"""Templates: publish (with optional approval), approve, reject, revert, preview, test send, and
`template_render_for_send`, which the delivery pipeline and journeys call for every send."""

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from apps.content import rendering, selectors, sms, validation
from apps.content.compiling import CompileError, compile_source
from apps.content.models import Layout, Template, TemplateLocale, TemplateVersion
from apps.content.rendering import CompiledVersion, RenderError, context_for
from apps.core import clock
from apps.core.errors import Conflict, InvalidInput, NotFound
from apps.core.validators import normalize_locale

TENANT_INFO_SECONDS = 30
# Errors of a rendered field are shown on the form field it came from.
FORM_FIELD = {("email", "html"): "email_body", ("email", "text"): "email_text"}


class _LRU:
    """A small thread-safe LRU: version id → (TemplateVersion, CompiledVersion)."""

    def __init__(self):
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > settings.SIGNALBOX_TEMPLATE_CACHE_SIZE:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


@dataclass(frozen=True)
class _TenantInfo:
    lineage_ids: tuple[int, ...]
    default_locale: str
    brand: dict


_versions = _LRU()
_tenants: dict[int, tuple[float, _TenantInfo]] = {}


def template_cache_clear() -> None:
    """Forget compiled versions and tenant brands (tests; a brand edit in this process)."""
    _versions.clear()
    _tenants.clear()


def brand_changed() -> None:
    """A brand was edited: this process re-reads brands at once (others within 30 s)."""
    _tenants.clear()


def _tenant_info(tenant) -> _TenantInfo:
    """Lineage, default locale and brand of a tenant, cached per process for 30 s: three reads
    of the hierarchy saved on every send; a brand edit shows within that time."""
    now = time.monotonic()
    hit = _tenants.get(tenant.pk)
    if hit is not None and hit[0] > now:
        return hit[1]
    info = _TenantInfo(lineage_ids=tuple(t.pk for t in tenant.lineage()),
                       default_locale=selectors.default_locale_for(tenant),
                       brand=selectors.brand_effective(tenant=tenant))
    _tenants[tenant.pk] = (now + TENANT_INFO_SECONDS, info)
    return info


def _compiled(version_id: int) -> tuple[TemplateVersion, CompiledVersion]:
    hit = _versions.get(version_id)
    if hit is None:
        # `source` is for people (diffs, revert); sends need only what it compiled to.
        version = TemplateVersion.objects.select_related("template").defer("source").get(pk=version_id)
        hit = (version, CompiledVersion(version.compiled))
        _versions.put(version_id, hit)
    return hit


# --- Sending ---------------------------------------------------------------------------------

def template_get_published(tenant, key: str) -> TemplateVersion:
    """The version of `key` published now, from the tenant or the nearest parent tenant that
    has it (one indexed query; the compiled version comes from the process cache)."""
    info = _tenant_info(tenant)
    rows = dict(Template.objects.filter(
        tenant_id__in=info.lineage_ids, key=key, published_version__isnull=False,
    ).values_list("tenant_id", "published_version_id"))
    version_id = next((rows[t] for t in info.lineage_ids if t in rows), None)
    if version_id is None:
        raise NotFound(f"No published template with key '{key}'.",
                       fields={"template": ["Unknown or not published."]})
    return _compiled(version_id)[0]


def template_render_for_send(*, tenant, key: str, channels: list[str], recipient: dict, data: dict,
                             message: dict, link_wrapper: Callable[[str], str] | None = None,
                             ) -> tuple[TemplateVersion, dict[str, dict]]:
    """The published version of `key` and, per channel, the content as the providers take it
    (the send API's `content` fields). The recipient's locale picks the variant (pt-BR → pt →
    tenant default → the template's own content).

    `recipient`: profile fields and `attributes` (see `recipient_profile`); `data`: the event's
    properties or the send's data; `message`: ids and unsubscribe/preference URLs.
    `link_wrapper(url) -> url`, if given, rewrites every link of the email (click tracking).
    Raises NotFound for an unknown or unpublished key, InvalidInput (field "template") when a
    channel has no content or rendering fails.
    """
    version = template_get_published(tenant, key)
    _, content = template_render(tenant=tenant, version=version, channels=channels, recipient=recipient,
                                 data=data, message=message, link_wrapper=link_wrapper)
    return version, content


def template_render(*, tenant, version: TemplateVersion, channels: list[str] | None, recipient: dict,
                    data: dict, message: dict, locale: str = "",
                    link_wrapper: Callable[[str], str] | None = None) -> tuple[str, dict[str, dict]]:
    """(the locale variant used, content per channel) of `version` for a send from `tenant`;
    all the variant's channels when `channels` is None. `locale` overrides the recipient's."""
    _, compiled = _compiled(version.pk)
    info = _tenant_info(tenant)
    try:
        context = context_for(recipient=recipient, data=data, tenant=selectors.brand_context(info.brand),
                              message=message)
    except ValueError as error:
        raise InvalidInput.field("data", f"Cannot be used in a template: {error}.") from None
    wanted = locale or str(recipient.get("locale") or "")
    chosen = compiled.locale_for(normalize_locale(wanted) if wanted else "", info.default_locale)
    content = {}
    for channel in compiled.channels(chosen) if channels is None else channels:
        try:
            content[channel] = compiled.render(locale=chosen, channel=channel, context=context,
                                               link_wrapper=link_wrapper)
        except RenderError as error:
            raise InvalidInput.field(
                "template", f"'{version.template.key}' version {version.number}: {error.message}") from None
    if "email" in content:
        content["email"].update(_sender(info.brand))
    return chosen, content


def content_render_inline(*, tenant, channel: str, fields: dict, recipient: dict, data: dict,
                          message: dict) -> dict:
    """A send's own `content` for `channel`, its Liquid rendered with the context a template gets
    (content without Liquid is returned as given). Raises InvalidInput naming the field."""
    if not rendering.has_liquid(fields):
        return fields
    try:
        context = context_for(recipient=recipient, data=data,
                              tenant=selectors.brand_context(_tenant_info(tenant).brand), message=message)
    except ValueError as error:
        raise InvalidInput.field("data", f"Cannot be used in content: {error}.") from None
    try:
        return rendering.render_inline(channel, fields, context)
    except RenderError as error:
        raise InvalidInput.field(f"content.{error.channel}.{error.field}", error.message) from None


def _sender(brand: dict) -> dict:
    return {k: brand[k] for k in ("from_name", "from_email") if brand.get(k)}


def recipient_profile(recipient) -> dict:
    """A Recipient as templates see it (plain data only)."""
    return {"external_id": recipient.external_id or "", "email": recipient.email, "phone": recipient.phone,
            "locale": recipient.locale, "timezone": recipient.timezone,
            "attributes": dict(recipient.attributes or {})}


# --- Checking and previewing drafts ----------------------------------------------------------

def _locale_fields(obj) -> dict[str, str]:
    return {field: getattr(obj, field) for field in selectors.CONTENT_FIELDS}


def template_draft_errors(*, template: Template, locales: list[TemplateLocale] | None = None
                          ) -> dict[str, list[str]]:
    """Every error of a draft (saved or not) by form field; "pt-BR/sms_text" for a locale's.
    Empty means it can be published."""
    partials = selectors.partials_for(tenant=template.tenant)
    if locales is None:
        locales = list(template.locales.all()) if template.pk else []
    errors = validation.content_errors(_locale_fields(template), partials=partials)
    for row in locales:
        for field, messages in validation.content_errors(_locale_fields(row), partials=partials).items():
            errors[f"{row.locale}/{field}"] = messages
    if errors:
        return errors
    source = selectors.template_source(template=template)
    source["locales"] = {r.locale: c for r in locales if (c := selectors.content_of(r))}
    try:
        compiled = CompiledVersion(compile_source(source))
    except CompileError as error:
        return error.errors
    recipient, data = selectors.sample_for(template)
    try:
        context = _preview_context(template, recipient, data)
    except ValueError as error:
        return {"sample_data": [str(error)]}
    for locale in compiled.locales:
        prefix = f"{locale}/" if locale else ""
        for channel in (source["locales"].get(locale) if locale else source["content"]) or {}:
            try:
                out = compiled.render(locale=locale, channel=channel, context=context)
            except RenderError as error:
                field = FORM_FIELD.get((channel, error.field), f"{channel}_{error.field}")
                errors.setdefault(prefix + field, []).append(f"With the sample data: {error.message}")
                continue
            if channel == "sms":
                for message in validation.sms_errors(out["text"]):
                    errors.setdefault(prefix + "sms_text", []).append(message)
    return errors


def _preview_context(template: Template, recipient: dict, data: dict) -> dict:
    brand = selectors.brand_effective(tenant=template.tenant)
    message = {"id": "preview", "template": template.key,
               "unsubscribe_url": "https://example.com/unsubscribe/preview",
               "preferences_url": "https://example.com/preferences/preview"}
    return context_for(recipient=recipient, data=data, tenant=selectors.brand_context(brand), message=message)


def template_preview(*, template: Template, recipient: dict, data: dict, locale: str = "") -> dict:
    """Every channel of the draft rendered in `locale` (or the recipient's), for the admin:
    {"locale", "locales", "channels": {channel: {"content" | "error", "sms"}}} or {"errors"}."""
    try:
        compiled = CompiledVersion(compile_source(selectors.template_source(template=template)))
        context = _preview_context(template, recipient, data)
    except CompileError as error:
        return {"errors": error.errors}
    except ValueError as error:
        return {"errors": {"sample_data": [str(error)]}}
    chosen = compiled.locale_for(locale or str(recipient.get("locale") or ""),
                                 selectors.default_locale_for(template.tenant))
    channels = {}
    for channel in compiled.channels(chosen):
        try:
            content = compiled.render(locale=chosen, channel=channel, context=context)
        except RenderError as error:
            channels[channel] = {"error": error.message}
            continue
        channels[channel] = {"content": content}
        if channel == "sms":
            channels[channel]["sms"] = sms.segments(content["text"])
    return {"locale": chosen, "locales": sorted(compiled.locales), "channels": channels}


def template_send_test(*, template: Template, channel: str, to: str, recipient: dict, data: dict) -> str:
    """Render the draft's `channel` and hand it to the tenant's providers, to `to` (the staff
    user's own address or number). Returns which provider took it."""
    from apps.delivery.providers.base import ProviderError, Rendered
    from apps.delivery.providers.registry import provider_for
    from apps.delivery.selectors import providers_for

    preview = template_preview(template=template, recipient=recipient, data=data)
    if "errors" in preview:
        raise InvalidInput("The draft has errors.", fields=preview["errors"])
    result = preview["channels"].get(channel)
    if result is None or "error" in result:
        problem = (result or {}).get("error") or f"The template has no {channel} content."
        raise InvalidInput.field("channel", problem)
    content = dict(result["content"])
    if channel == "email":
        content["subject"] = f"[Test] {content['subject']}"
        content.update(_sender(selectors.brand_effective(tenant=template.tenant)))
    configs = providers_for(tenant=template.tenant, channel=channel)
    if not configs:
        raise InvalidInput.field("channel", f"No {channel} provider is configured for {template.tenant}.")
    failures = []
    for config in configs:
        try:
            provider_for(config).send(Rendered(channel=channel, to=to, content=content),
                                      idempotency_key=f"test-{uuid.uuid4().hex}")
        except ProviderError as error:
            failures.append(f"{config.name}: {error}")
            continue
        return config.name
    raise InvalidInput.field("to", "Every provider failed: " + "; ".join(failures))


# --- Versions --------------------------------------------------------------------------------

def approval_required(tenant) -> bool:
    return bool(selectors.brand_effective(tenant=tenant)["require_approval"])


def user_may_approve(user, tenant) -> bool:
    from apps.tenants.selectors import tenant_ids_for_user

    if user is None:
        return False
    return user.is_superuser or tenant.pk in tenant_ids_for_user(
        user=user, permission="content.approve_templateversion")


@transaction.atomic
def template_version_publish(*, template: Template, user, comment: str = "") -> TemplateVersion:
    """Snapshot the draft as the next version: published now, or awaiting approval when the
    tenant requires it and `user` may not approve. A draft with errors is refused."""
    template = Template.objects.select_for_update().select_related("tenant").get(pk=template.pk)
    errors = template_draft_errors(template=template)
    if errors:
        raise InvalidInput("The template has errors; fix them before publishing.", fields=errors)
    source = selectors.template_source(template=template)
    if not source["content"] and not source["locales"]:
        raise InvalidInput.field("template", "No channel has content yet.")
    source["template_layout"] = template.layout.name if template.layout_id else None
    return _version_create(template, source, compile_source(source), user, comment)


def _version_create(template: Template, source: dict, compiled: dict, user, comment: str) -> TemplateVersion:
    number = (template.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    now = clock.now()
    publish = not approval_required(template.tenant) or user_may_approve(user, template.tenant)
    # One request waits at a time: a newer one replaces it.
    template.versions.filter(state=TemplateVersion.State.PENDING).update(
        state=TemplateVersion.State.REJECTED, review_comment=f"Superseded by version {number}.",
        reviewed_at=now)
    version = TemplateVersion.objects.create(
        tenant=template.tenant, template=template, number=number, source=source, compiled=compiled,
        state=TemplateVersion.State.PUBLISHED if publish else TemplateVersion.State.PENDING,
        comment=comment, created_by=user, published_at=now if publish else None,
    )
    if publish:
        Template.objects.filter(pk=template.pk).update(published_version=version)
    return version


def _pending(version: TemplateVersion, user) -> TemplateVersion:
    version = TemplateVersion.objects.select_for_update().select_related("tenant").get(pk=version.pk)
    if version.state != TemplateVersion.State.PENDING:
        state = version.get_state_display().lower()
        raise Conflict(f"Version {version.number} is {state}, not awaiting approval.")
    if not user_may_approve(user, version.tenant):
        raise InvalidInput.field("user", "You may not approve templates in this tenant.")
    return version


@transaction.atomic
def template_version_approve(*, version: TemplateVersion, user, comment: str = "") -> TemplateVersion:
    version = _pending(version, user)
    now = clock.now()
    version.state, version.published_at = TemplateVersion.State.PUBLISHED, now
    version.reviewed_by, version.reviewed_at, version.review_comment = user, now, comment
    version.save(update_fields=["state", "published_at", "reviewed_by", "reviewed_at", "review_comment"])
    Template.objects.filter(pk=version.template_id).update(published_version=version)
    return version


@transaction.atomic
def template_version_reject(*, version: TemplateVersion, user, comment: str) -> TemplateVersion:
    if not comment.strip():
        raise InvalidInput.field("comment", "Say why it is rejected.")
    version = _pending(version, user)
    version.state = TemplateVersion.State.REJECTED
    version.reviewed_by, version.reviewed_at, version.review_comment = user, clock.now(), comment
    version.save(update_fields=["state", "reviewed_by", "reviewed_at", "review_comment"])
    return version


@transaction.atomic
def template_version_revert(*, version: TemplateVersion, user) -> TemplateVersion:
    """Make an older version current again as a new version with the same content (its layout
    and partials as they were), and put its content back into the draft."""
    template = Template.objects.select_for_update().select_related("tenant").get(pk=version.template_id)
    _draft_restore(template, version)
    return _version_create(template, version.source, version.compiled, user,
                           f"Revert to version {version.number}.")


def _draft_restore(template: Template, version: TemplateVersion) -> None:
    source = version.source
    _fill(template, source["content"])
    template.name, template.category, template.strict = source["name"], source["category"], source["strict"]
    layout_name = source.get("template_layout")
    template.layout = selectors.layouts_for(tenant=template.tenant).filter(name=layout_name).first() \
        if layout_name else None
    template._change_reason = f"Reverted to version {version.number}"
    template.save()
    template.locales.exclude(locale__in=list(source["locales"])).delete()
    for locale, content in source["locales"].items():
        row = template.locales.filter(locale=locale).first() or TemplateLocale(
            tenant=template.tenant, template=template, locale=locale)
        _fill(row, content)
        row.save()


def _fill(obj, content: dict) -> None:
    for field, (channel, name) in selectors.CONTENT_FIELDS.items():
        default = "mjml" if field == "email_format" else ""
        setattr(obj, field, content.get(channel, {}).get(name, default))


def layout_in_lineage(layout: Layout | None, tenant) -> bool:
    return layout is None or layout.tenant_id in {t.pk for t in tenant.lineage()}
