"""Reads about tenants: the hierarchy and which tenants a staff user may act in."""

import time
from collections.abc import Iterable

from django.contrib.auth.models import Group

from apps.tenants.models import Membership, Role, Tenant


def tenant_descendant_ids(*, tenant_ids: Iterable[int]) -> set[int]:
    """The given tenants and every tenant below them (one query per level, depth ≤ 4)."""
    found = set(tenant_ids)
    frontier = set(found)
    while frontier:
        frontier = set(
            Tenant.objects.filter(parent_id__in=frontier).values_list("id", flat=True)
        ) - found
        found |= frontier
    return found


def role_permissions() -> dict[str, set[str]]:
    """Role → the 'app_label.codename' permissions its group grants."""
    label_to_role = {label: value for value, label in Role.choices}
    grants: dict[str, set[str]] = {value: set() for value in label_to_role.values()}
    rows = Group.objects.filter(name__in=label_to_role).values_list(
        "name", "permissions__content_type__app_label", "permissions__codename"
    )
    for group, app_label, codename in rows:
        if codename:
            grants[label_to_role[group]].add(f"{app_label}.{codename}")
    return grants


def tenant_ids_for_user(*, user, permission: str | None = None) -> set[int]:
    """Tenants `user` may act in: their memberships' tenants and all sub-tenants.

    With `permission`, only memberships whose role grants it count, so a user who is Tenant
    admin in one tenant and Support in another can change things only in the first.
    """
    memberships = list(Membership.objects.filter(user=user).values_list("tenant_id", "role"))
    if permission is not None:
        grants = role_permissions()
        memberships = [(t, role) for t, role in memberships if permission in grants[role]]
    return tenant_descendant_ids(tenant_ids=[t for t, _ in memberships])


TENANT_CACHE_SECONDS = 30
# tenant id → (expires at, Tenant): read on every API request, changed rarely.
_tenants: dict[int, tuple[float, Tenant]] = {}


def tenant_get_cached(*, tenant_id: int) -> Tenant:
    """The tenant, from a per-process cache at most TENANT_CACHE_SECONDS old (one query saved
    per API request; renames and moves show up within that time)."""
    now = time.monotonic()
    hit = _tenants.get(tenant_id)
    if hit is not None and hit[0] > now:
        return hit[1]
    tenant = Tenant.objects.get(pk=tenant_id)
    _tenants[tenant_id] = (now + TENANT_CACHE_SECONDS, tenant)
    return tenant
