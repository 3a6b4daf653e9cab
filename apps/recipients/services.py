"""Writes for recipients: profile upserts (one or many), alias links and merges, erasure."""

from collections.abc import Iterable, Mapping

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.db.models.functions import Coalesce
from django.utils.module_loading import import_string

from apps.core import clock
from apps.core.errors import InvalidInput
from apps.core.validators import normalize_locale, validate_locale, validate_timezone
from apps.events.models import Event
from apps.recipients.models import Recipient, RecipientAlias
from apps.recipients.validators import normalize_phone

PROFILE_FIELDS = ("email", "phone", "locale", "timezone")


def profiles_changed(*, tenant_id: int, recipient_ids: Iterable[int], history_changed: bool = False) -> None:
    """Tell each SIGNALBOX_PROFILE_CONSUMERS entry (segments) that these recipients were created
    or their profile changed (and, with `history_changed`, their events: a merge, an erasure)."""
    ids = sorted(set(recipient_ids))
    if ids:
        for path in settings.SIGNALBOX_PROFILE_CONSUMERS:
            import_string(path)(tenant_id=tenant_id, recipient_ids=ids, history_changed=history_changed)


def _email(value: str) -> str:
    validate_email(value)
    return value.lower()


def _locale(value: str) -> str:
    validate_locale(value)
    return normalize_locale(value)


def _timezone(value: str) -> str:
    validate_timezone(value)
    return value


_NORMALIZE = {"email": _email, "phone": normalize_phone, "locale": _locale, "timezone": _timezone}


def profile_validate(data: Mapping, *, prefix: str = "") -> dict:
    """Check and normalise profile fields; unknown keys are ignored.

    A field set to null (or "") is cleared. `attributes` merges into the stored ones, and an
    attribute set to null is removed. Raises InvalidInput naming every bad field.
    """
    errors: dict[str, list[str]] = {}
    profile: dict = {}
    for name in PROFILE_FIELDS:
        if name not in data:
            continue
        value = data[name]
        path = f"{prefix}.{name}" if prefix else name
        if value is None or value == "":
            profile[name] = ""
        elif not isinstance(value, str):
            errors[path] = ["Must be a string or null."]
        else:
            try:
                profile[name] = _NORMALIZE[name](value.strip())
            except ValidationError as exc:
                errors[path] = exc.messages
    attributes = data.get("attributes")
    if attributes is not None:
        if isinstance(attributes, dict):
            profile["attributes"] = attributes
        else:
            errors[f"{prefix}.attributes" if prefix else "attributes"] = ["Must be a JSON object."]
    if errors:
        raise InvalidInput("Invalid profile.", fields=errors)
    return profile


def profile_apply(recipient: Recipient, profile: Mapping) -> bool:
    """Apply a validated profile to the instance (not saved). Returns whether anything changed."""
    changed = False
    for name in PROFILE_FIELDS:
        if name in profile and getattr(recipient, name) != profile[name]:
            setattr(recipient, name, profile[name])
            changed = True
    if profile.get("attributes"):
        merged = dict(recipient.attributes)
        for key, value in profile["attributes"].items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        if merged != recipient.attributes:
            recipient.attributes = merged
            changed = True
    return changed


@transaction.atomic
def recipient_upsert(*, tenant, external_id: str, profile: Mapping) -> tuple[Recipient, bool]:
    """Create or update the recipient `external_id` of `tenant` with a validated profile."""
    recipient, created = Recipient.objects.select_for_update().get_or_create(
        tenant=tenant, external_id=external_id
    )
    if recipient.merged_into_id:
        recipient = Recipient.objects.select_for_update().get(pk=recipient.merged_into_id)
    if profile_apply(recipient, profile) or created:
        recipient.save()
        profiles_changed(tenant_id=recipient.tenant_id, recipient_ids=[recipient.pk])
    return recipient, created


def recipients_apply_profiles(*, tenant, profiles: Mapping[int, Mapping], notify: bool = True) -> None:
    """Apply validated profiles to many recipients (recipient id → profile) in two queries.
    `notify=False`: the caller's events will tell the segments (their consumer re-evaluates
    every recipient of a batch), so the request path skips it."""
    if not profiles:
        return
    changed, now = [], clock.now()
    for recipient in Recipient.objects.filter(tenant=tenant, pk__in=profiles):
        if profile_apply(recipient, profiles[recipient.pk]):
            recipient.updated_at = now
            changed.append(recipient)
    Recipient.objects.bulk_update(changed, [*PROFILE_FIELDS, "attributes", "updated_at"])
    if notify:
        profiles_changed(tenant_id=tenant.pk, recipient_ids=[r.pk for r in changed])


def recipients_resolve_many(*, tenant, external_ids: Iterable[str], notify: bool = True) -> dict[str, int]:
    """external_id → recipient id for each id, creating those that do not exist (2–3 queries).
    `notify`: as for recipients_apply_profiles."""
    wanted = set(external_ids)
    if not wanted:
        return {}

    found = _by_external_id(tenant.pk, wanted)
    missing = wanted - found.keys()
    if missing:
        # ignore_conflicts: a concurrent request may create the same ids; the re-read sees them.
        now = clock.now()
        Recipient.objects.bulk_create(
            [Recipient(tenant=tenant, external_id=ext, created_at=now, updated_at=now) for ext in missing],
            ignore_conflicts=True,
        )
        created = _by_external_id(tenant.pk, missing)
        found |= created
        if notify:
            profiles_changed(tenant_id=tenant.pk, recipient_ids=created.values())
    return found


def _by_external_id(tenant_id: int, external_ids: set[str]) -> dict[str, int]:
    """external_id → recipient id (the one it was merged into, if it was) for those that exist.
    On PostgreSQL the ids travel as one array parameter: the ORM's `IN` prepared each of a
    batch's 100 ids through its lookup machinery, a third of a Segment batch's CPU
    (docs/performance.md)."""
    if connection.vendor != "postgresql":
        rows = Recipient.objects.filter(tenant_id=tenant_id, external_id__in=external_ids).values_list(
            "external_id", "id", "merged_into_id")
        return {ext: merged or pk for ext, pk, merged in rows}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT external_id, id, merged_into_id FROM {Recipient._meta.db_table} "  # noqa: S608
            "WHERE tenant_id = %s AND external_id = ANY(%s::text[])", [tenant_id, list(external_ids)])
        return {ext: merged or pk for ext, pk, merged in cursor.fetchall()}


def aliases_resolve_many(*, tenant, aliases: Iterable[str], notify: bool = True) -> dict[str, int]:
    """alias (e.g. Segment anonymousId) → recipient id, creating anonymous recipients as needed."""
    wanted = set(aliases)
    if not wanted:
        return {}

    def lookup(ids):
        rows = RecipientAlias.objects.filter(tenant=tenant, alias__in=ids).values_list(
            "alias", "recipient_id", "recipient__merged_into_id"
        )
        return {alias: merged or pk for alias, pk, merged in rows}

    found = lookup(wanted)
    missing = sorted(wanted - found.keys())
    if missing:
        now = clock.now()
        anonymous = Recipient.objects.bulk_create(
            [Recipient(tenant=tenant, created_at=now, updated_at=now) for _ in missing])
        RecipientAlias.objects.bulk_create(
            [RecipientAlias(tenant=tenant, alias=alias, recipient=recipient, created_at=now, updated_at=now)
             for alias, recipient in zip(missing, anonymous, strict=True)],
            ignore_conflicts=True,
        )
        found |= lookup(missing)
        if notify:
            profiles_changed(tenant_id=tenant.pk, recipient_ids=[r.pk for r in anonymous])
    return found


def aliases_link_many(*, tenant, links: Mapping[str, int]) -> None:
    """Point each alias (alias → recipient id) at its recipient: missing links are created in
    bulk; an alias that leads to another recipient merges that one in (the rare slow path)."""
    if not links:
        return
    existing = dict(RecipientAlias.objects.filter(tenant=tenant, alias__in=links).values_list(
        "alias", Coalesce("recipient__merged_into_id", "recipient_id")))
    now = clock.now()
    RecipientAlias.objects.bulk_create(
        [RecipientAlias(tenant=tenant, alias=alias, recipient_id=rid, created_at=now, updated_at=now)
         for alias, rid in links.items() if alias not in existing],
        ignore_conflicts=True,
    )
    for alias, rid in links.items():
        if alias in existing and existing[alias] != rid:
            recipient_link_alias(tenant=tenant, alias=alias, recipient_id=rid)


@transaction.atomic
def recipient_link_alias(*, tenant, alias: str, recipient_id: int) -> None:
    """Make `alias` point to the recipient; a different recipient it pointed to is merged in."""
    target = Recipient.objects.select_for_update().get(tenant=tenant, pk=recipient_id)
    link, created = RecipientAlias.objects.select_for_update().get_or_create(
        tenant=tenant, alias=alias, defaults={"recipient": target}
    )
    if not created and link.recipient_id != target.pk:
        recipient_merge(source=link.recipient, target=target)


@transaction.atomic
def recipient_merge(*, source: Recipient, target: Recipient) -> None:
    """Fold `source` into `target`: its events and aliases move, blanks in target are filled
    from source, and source keeps a `merged_into` link so lookups of it land on target."""
    if source.pk == target.pk:
        return
    Event.objects.filter(recipient=source).update(recipient=target)
    RecipientAlias.objects.filter(recipient=source).update(recipient=target)
    Recipient.objects.filter(merged_into=source).update(merged_into=target)
    for name in PROFILE_FIELDS:
        if not getattr(target, name) and getattr(source, name):
            setattr(target, name, getattr(source, name))
    target.attributes = {**source.attributes, **target.attributes}
    target.save()
    source.merged_into = target
    source.save(update_fields=["merged_into"])
    # Events moved too: history segments are part of what a merge changes.
    profiles_changed(tenant_id=target.tenant_id, recipient_ids=[source.pk, target.pk], history_changed=True)


@transaction.atomic
def recipient_erase(*, recipient: Recipient) -> None:
    """Erase a recipient's personal data (GDPR art. 17): profile, aliases and events.

    The row stays, anonymous, so counts and (later) message statistics still add up.
    """
    for merged in Recipient.objects.filter(merged_into=recipient):
        recipient_erase(recipient=merged)  # profiles folded into this one hold its data too
    Event.objects.filter(recipient=recipient).delete()
    RecipientAlias.objects.filter(recipient=recipient).delete()
    for name in PROFILE_FIELDS:
        setattr(recipient, name, "")
    recipient.external_id = None
    recipient.attributes = {}
    recipient.erased_at = clock.now()
    recipient.save()
    profiles_changed(tenant_id=recipient.tenant_id, recipient_ids=[recipient.pk], history_changed=True)
