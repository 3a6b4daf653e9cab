"""The demo segments seed_demo adds, computed at once (a few recipients)."""

from apps.segments import services
from apps.segments.models import Segment

SEGMENTS = [
    ("all-recipients", "All recipients", {}),
    ("pro-users", "Pro users", {"field": "recipient.attributes.plan", "op": "eq", "value": "pro"}),
]


def demo_segments_seed(*, tenant) -> dict[str, int]:
    """Segment key → member count. Idempotent: existing segments are recomputed, not changed."""
    sizes = {}
    for key, name, conditions in SEGMENTS:
        segment, _ = Segment.objects.get_or_create(tenant=tenant, key=key,
                                                   defaults={"name": name, "conditions": conditions})
        sizes[key] = services.segment_recompute(segment)
    return sizes
