"""Writes for tenants, memberships and API keys."""

import hmac
import re
import secrets
import string
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import transaction

from apps.core import clock
from apps.core.cache import cache_get, cache_set
from apps.tenants.models import ApiKey, Membership, Role, Tenant

_ALPHABET = string.ascii_letters + string.digits
_KIND_CODES = {ApiKey.Kind.SECRET: "sk", ApiKey.Kind.WRITE: "wk"}
_MISS_CACHE_SECONDS = 30
_MEMO_SIZE = 10_000
TOKEN_RE = re.compile(r"^sb_(sk|wk)_(live|test)_[A-Za-z0-9]{8}_[A-Za-z0-9]{16,64}$")
# Per process: when each key's use was last written to the cache (at most once a minute).
_usage_noted_at: dict[str, float] = {}
# Per process: prefix → (expires at, cache entry), for SIGNALBOX_API_KEY_MEMO_SECONDS: the shared
# cache's round trip was 14 % of a one-event request's CPU (docs/performance.md).
_memo: dict[str, tuple[float, dict]] = {}


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _cache_key(prefix: str) -> str:
    return f"signalbox:apikey:{prefix}"


def _usage_key(api_key_id: int) -> str:
    return f"signalbox:apikey-used:{api_key_id}"


@dataclass(frozen=True)
class ApiKeyIdentity:
    """What a request authenticated with: cached, so no model instance."""

    id: int
    tenant_id: int
    kind: str
    mode: str


# --- API keys ----------------------------------------------------------------------------------

def api_key_create(
    *, tenant: Tenant, name: str, kind: str = ApiKey.Kind.SECRET, mode: str = ApiKey.Mode.LIVE,
    created_by=None, secret: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns it with the full token, which is never retrievable again.

    `secret` is for seed_demo only, which derives a stable one so re-runs print the same key.
    """
    secret = secret or _random(32)
    prefix = f"sb_{_KIND_CODES[kind]}_{mode}_{_random(8)}"
    api_key = ApiKey.objects.create(
        tenant=tenant, name=name, kind=kind, mode=mode, prefix=prefix,
        secret_hash=ApiKey.hash_secret(secret), created_by=created_by,
    )
    return api_key, f"{prefix}_{secret}"


def api_key_revoke(*, api_key: ApiKey) -> None:
    """Revoke now: the cache entry goes too, so the next request is refused at once by this
    process and within SIGNALBOX_API_KEY_MEMO_SECONDS by the others (their memo)."""
    if api_key.revoked_at is None:
        api_key.revoked_at = clock.now()
        api_key.save(update_fields=["revoked_at"])

    def forget():
        _memo.pop(api_key.prefix, None)
        cache.delete(_cache_key(api_key.prefix))

    transaction.on_commit(forget, robust=True)


def _entry(prefix: str) -> dict:
    """The key's cache entry: from the process's memo while fresh, else the shared cache, else
    the database."""
    now = time.monotonic()
    held = _memo.get(prefix)
    if held is not None and held[0] > now:
        return held[1]
    entry = cache_get(_cache_key(prefix)) or _lookup(prefix)
    if settings.SIGNALBOX_API_KEY_MEMO_SECONDS > 0:
        if len(_memo) >= _MEMO_SIZE:
            _memo.clear()  # unknown prefixes tried at random must not grow it without end
        _memo[prefix] = (now + settings.SIGNALBOX_API_KEY_MEMO_SECONDS, entry)
    return entry


def _lookup(prefix: str) -> dict:
    row = (
        ApiKey.objects.filter(prefix=prefix)
        .values("id", "tenant_id", "kind", "mode", "secret_hash", "revoked_at")
        .first()
    )
    if row is None:
        cache_set(_cache_key(prefix), {"missing": True}, _MISS_CACHE_SECONDS)
        return {"missing": True}
    entry = {**row, "revoked": row.pop("revoked_at") is not None}
    cache_set(_cache_key(prefix), entry, settings.SIGNALBOX_API_KEY_CACHE_SECONDS)
    return entry


def api_key_authenticate(*, token: str) -> ApiKeyIdentity | None:
    """The identity behind a full token, or None if it is unknown, malformed or revoked.

    In the common case no read at all (the process's memo) or one cache read a second per key
    and process; the hash is one SHA-256.
    """
    if not TOKEN_RE.match(token):
        return None
    prefix, _, secret = token.rpartition("_")
    entry = _entry(prefix)
    if entry.get("missing") or entry["revoked"]:
        return None
    if not hmac.compare_digest(entry["secret_hash"], ApiKey.hash_secret(secret)):
        return None
    _note_usage(entry["id"], prefix)
    return ApiKeyIdentity(
        id=entry["id"], tenant_id=entry["tenant_id"], kind=entry["kind"], mode=entry["mode"]
    )


def _note_usage(api_key_id: int, prefix: str) -> None:
    """Remember the key was used; api_keys_record_usage (a tick job) writes it to the row."""
    now = time.monotonic()
    if now - _usage_noted_at.get(prefix, -60.0) >= 60:
        _usage_noted_at[prefix] = now
        cache_set(_usage_key(api_key_id), clock.now().timestamp(), 7 * 86400)


def api_keys_record_usage() -> int:
    """Copy 'last used' times from the cache to the rows. Returns how many rows changed."""
    keys = list(ApiKey.objects.filter(revoked_at__isnull=True).only("id", "last_used_at"))
    stamps = cache.get_many([_usage_key(k.id) for k in keys])
    changed = []
    for key in keys:
        stamp = stamps.get(_usage_key(key.id))
        if stamp is None:
            continue
        used_at = datetime.fromtimestamp(stamp, tz=UTC)
        if key.last_used_at is None or used_at > key.last_used_at:
            key.last_used_at = used_at
            changed.append(key)
    ApiKey.objects.bulk_update(changed, ["last_used_at"])
    return len(changed)


# --- Memberships -------------------------------------------------------------------------------

def user_sync_role_groups(*, user) -> None:
    """Put the user in exactly the role groups of their memberships (other groups untouched)."""
    role_labels = dict(Role.choices)
    wanted = {role_labels[r] for r in Membership.objects.filter(user=user).values_list("role", flat=True)}
    role_groups = Group.objects.filter(name__in=role_labels.values())
    user.groups.remove(*[g for g in role_groups if g.name not in wanted])
    user.groups.add(*[g for g in role_groups if g.name in wanted])


@transaction.atomic
def membership_save(*, membership: Membership) -> Membership:
    """Save a membership; its user becomes staff (to reach the admin) with the role's group."""
    membership.save()
    user = membership.user
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    user_sync_role_groups(user=user)
    return membership


@transaction.atomic
def membership_delete(*, membership: Membership) -> None:
    user = membership.user
    membership.delete()
    user_sync_role_groups(user=user)
