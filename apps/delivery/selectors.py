from apps.core.cache import VersionedLookup, version_bump
from apps.delivery.models import ProviderConfig

# Bumped whenever a provider or a tenant changes; each process drops its cached lookups when it
# sees a new value. Bumped at once and again after commit (a worker that read in between).
VERSION_KEY = "signalbox:providers-version"


def providers_for(*, tenant, channel: str) -> list[ProviderConfig]:
    """The enabled providers of the nearest tenant in the hierarchy that has any for `channel`."""
    lineage = tenant.lineage()
    configs = list(ProviderConfig.objects.filter(
        tenant__in=lineage, channel=channel, enabled=True).order_by("position", "id"))
    for owner in lineage:
        own = [c for c in configs if c.tenant_id == owner.pk]
        if own:
            return own
    return []


class ProviderLookup(VersionedLookup):
    """providers_for, from a per-process cache valid while the shared version is unchanged
    (one cache read per lookup object, i.e. per batch of sends, instead of two queries per
    tenant and channel). Without a reachable cache it always asks the database."""

    VERSION_KEY = VERSION_KEY
    _found: dict[tuple[int, str], list[ProviderConfig]] = {}
    _version: str | None = None

    def __call__(self, *, tenant, channel: str) -> list[ProviderConfig]:
        if (tenant.pk, channel) not in self.found:
            self.found[tenant.pk, channel] = providers_for(tenant=tenant, channel=channel)
        return self.found[tenant.pk, channel]


def providers_changed(**kwargs) -> None:
    """Signal receiver (provider or tenant saved or deleted): invalidate every process's lookups."""
    version_bump(VERSION_KEY)
