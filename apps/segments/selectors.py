"""Reads for segments: members by keyset page, a sample, and each tenant's segments cached per
process (what the event consumer and the profile hook ask for every batch)."""

from dataclasses import dataclass

from apps.core.cache import VersionedLookup, version_bump
from apps.segments import conditions
from apps.segments.models import Segment, SegmentMembership

VERSION_KEY = "signalbox:segments-version"


def segment_member_ids(segment, *, after_id: int = 0, limit: int = 5000) -> list[int]:
    """The next page of a segment's recipient ids, in id order (keyset: pass the last id seen)."""
    return list(SegmentMembership.objects.filter(segment=segment, recipient_id__gt=after_id)
                .order_by("recipient_id").values_list("recipient_id", flat=True)[:limit])


def segment_sample(*, segment, limit: int = 20) -> list:
    """A few members, the newest recipients first (for the admin; on the unique index)."""
    from apps.recipients.models import Recipient

    ids = (SegmentMembership.objects.filter(segment=segment).order_by("-recipient_id")
           .values_list("recipient_id", flat=True)[:limit])
    return list(Recipient.objects.filter(tenant_id=segment.tenant_id, pk__in=list(ids)).order_by("-pk"))


@dataclass(frozen=True)
class SegmentInfo:
    """What incremental updates need to know of a segment, without loading it."""

    id: int
    tenant_id: int
    key: str
    conditions: dict
    history_names: frozenset[str]
    uses_profile: bool


def segment_info(segment: Segment) -> SegmentInfo:
    cond = segment.conditions or {}
    return SegmentInfo(segment.pk, segment.tenant_id, segment.key, cond,
                       frozenset(conditions.history_names(cond)), conditions.uses_profile(cond))


class SegmentLookup(VersionedLookup):
    """A tenant's segments, cached per process until the shared version changes (bumped on every
    save or delete of a segment): one cache read per lookup object, i.e. per batch."""

    VERSION_KEY = VERSION_KEY
    _found: dict[int, list[SegmentInfo]] = {}
    _version: str | None = None

    def __call__(self, *, tenant_id: int) -> list[SegmentInfo]:
        if tenant_id not in self.found:
            self.found[tenant_id] = [
                segment_info(Segment(pk=pk, tenant_id=tenant_id, key=key, conditions=cond))
                for pk, key, cond in Segment.objects.filter(tenant_id=tenant_id).order_by("pk")
                .values_list("pk", "key", "conditions")]
        return self.found[tenant_id]


def segment_cache_clear() -> None:
    SegmentLookup.clear()


def segments_changed(**kwargs) -> None:
    """Signal receiver: a segment was saved or deleted; every process reloads."""
    version_bump(VERSION_KEY)
