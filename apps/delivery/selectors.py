from apps.delivery.models import ProviderConfig


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
