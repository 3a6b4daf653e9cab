"""Segment writes: saving, the full recompute (chunked, in the background), and the incremental
updates from events and profile changes. Joining and leaving are handed to each hook in
SIGNALBOX_SEGMENT_CONSUMERS (the journeys start and end runs there) — segments import no journeys.

Which conditions are incremental (see docs/segments.md):
- `history.<name>` tests: re-evaluated for the recipients of each batch of events named `<name>`
  (the event consumer `segments_consume`);
- `recipient.*` tests (columns, attributes): re-evaluated for the recipients whose profile changed,
  and for new recipients (`segments_profiles_changed`, called by apps/recipients/services), and
  for every recipient of a batch of events (ingestion creates recipients and applies profiles
  without calling the hook: `segments_consume` sees them after commit, off the request path);
- time alone (`within_last_days`) changes no row: such segments are recomputed in full by the tick
  job `segments_recompute_due` every SIGNALBOX_SEGMENT_RECOMPUTE_MINUTES.
"""

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils.module_loading import import_string

from apps.core import clock
from apps.core.errors import InvalidInput
from apps.core.queue import enqueue_on_commit
from apps.segments import conditions
from apps.segments.models import Segment, SegmentMembership
from apps.segments.selectors import SegmentInfo, SegmentLookup, segment_info

logger = logging.getLogger(__name__)


def segment_errors(*, segment: Segment) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for path, message in conditions.validate(segment.conditions or {}, "conditions"):
        errors.setdefault(path, []).append(message)
    return errors


def segment_save(*, segment: Segment) -> Segment:
    """Save a segment; a new one, or one whose conditions changed, is recomputed in the background."""
    errors = segment_errors(segment=segment)
    if errors:
        raise InvalidInput("The segment's conditions have errors.", fields=errors)
    previous = Segment.objects.filter(pk=segment.pk).values_list("conditions", flat=True).first() \
        if segment.pk else None
    changed = segment.pk is None or previous != segment.conditions
    with transaction.atomic():
        segment.save()
        if changed:
            segment_recompute_request(segment=segment)
    return segment


def segment_recompute_request(*, segment: Segment) -> None:
    """Mark the segment computing and schedule its full recompute (task `segments.recompute`)."""
    from apps.segments.tasks import recompute_segment

    now = clock.now()
    Segment.objects.filter(pk=segment.pk).update(status=Segment.Status.COMPUTING, progress_done=0,
                                                 progress_total=0, updated_at=now)
    segment.status, segment.progress_done, segment.progress_total = Segment.Status.COMPUTING, 0, 0
    enqueue_on_commit(recompute_segment, segment.pk)


def _eligible(tenant_id: int):
    """The recipients a segment may hold: the tenant's own, neither merged away nor erased."""
    from apps.recipients.models import Recipient

    return Recipient.objects.filter(tenant_id=tenant_id, merged_into__isnull=True, erased_at__isnull=True)


def segment_recompute(segment: Segment, *, chunk_size: int | None = None) -> int:
    """Evaluate the segment over all the tenant's recipients, in id-ordered chunks (one
    transaction each): members who no longer match leave, new matches join, progress is written
    after each chunk. Returns the member count. The benchmark calls this."""
    from apps.recipients.models import Recipient

    chunk_size = chunk_size or settings.SIGNALBOX_SEGMENT_CHUNK
    info, now = segment_info(segment), clock.now()
    q = conditions.compile_q(info.conditions, tenant_id=info.tenant_id, now=now)
    recipients = Recipient.objects.filter(tenant_id=info.tenant_id)
    total = recipients.count()
    Segment.objects.filter(pk=segment.pk).update(status=Segment.Status.COMPUTING, progress_done=0,
                                                 progress_total=total, updated_at=clock.now())
    last, done = 0, 0
    while True:
        ids = list(recipients.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:chunk_size])
        if not ids:
            break
        low, last = ids[0], ids[-1]
        with transaction.atomic():
            matching = set(_eligible(info.tenant_id).filter(pk__gte=low, pk__lte=last).filter(q)
                           .values_list("pk", flat=True))
            current = set(SegmentMembership.objects.filter(segment_id=info.id, recipient_id__gte=low,
                                                           recipient_id__lte=last)
                          .values_list("recipient_id", flat=True))
            _apply(info, sorted(matching - current), sorted(current - matching), now, count=False)
            done += len(ids)
            Segment.objects.filter(pk=segment.pk).update(progress_done=done, updated_at=clock.now())
    with transaction.atomic():
        SegmentMembership.objects.filter(segment_id=info.id, recipient_id__gt=last).delete()
        count = SegmentMembership.objects.filter(segment_id=info.id).count()
        Segment.objects.filter(pk=segment.pk).update(
            status=Segment.Status.READY, member_count=count, computed_at=now, progress_done=total,
            drifts=conditions.time_relative(info.conditions), updated_at=clock.now())
    segment.status, segment.member_count, segment.computed_at = Segment.Status.READY, count, now
    segment.progress_done = segment.progress_total = total
    return count


def segments_refresh(*, tenant_id: int, recipient_ids: Iterable[int], segments: list[SegmentInfo],
                     now: datetime | None = None) -> None:
    """Re-evaluate `segments` for these recipients only: one query per segment for who matches,
    one for who is in; joiners and leavers are written and handed on."""
    ids = sorted(set(recipient_ids))
    if not ids or not segments:
        return
    now = now or clock.now()
    for info in segments:
        q = conditions.compile_q(info.conditions, tenant_id=tenant_id, now=now)
        matching = set(_eligible(tenant_id).filter(pk__in=ids).filter(q).values_list("pk", flat=True))
        current = set(SegmentMembership.objects.filter(segment_id=info.id, recipient_id__in=ids)
                      .values_list("recipient_id", flat=True))
        _apply(info, sorted(matching - current), sorted(current - matching), now)


def _apply(info: SegmentInfo, joined: list[int], left: list[int], now: datetime, *, count: bool = True
           ) -> None:
    if not joined and not left:
        return
    if joined:
        SegmentMembership.objects.bulk_create(
            [SegmentMembership(segment_id=info.id, recipient_id=rid, joined_at=now) for rid in joined],
            ignore_conflicts=True)
    if left:
        SegmentMembership.objects.filter(segment_id=info.id, recipient_id__in=left).delete()
    if count:
        Segment.objects.filter(pk=info.id).update(member_count=F("member_count") + len(joined) - len(left))
    for path in settings.SIGNALBOX_SEGMENT_CONSUMERS:
        import_string(path)(tenant_id=info.tenant_id, segment_key=info.key, joined=joined, left=left)


# --- Incremental updates -----------------------------------------------------------------------

def segments_consume(*, events: list) -> None:
    """SIGNALBOX_EVENT_CONSUMERS entry: for each tenant in the batch, the segments whose
    conditions name one of its events are re-evaluated for the recipients who did those events,
    and the segments that test profiles for every recipient of the batch (events ingestion
    creates recipients and applies inline and identify profiles without telling segments, so
    that the request path stays as it was: here is where those changes are seen)."""
    by_tenant: dict[int, list] = defaultdict(list)
    for event in events:
        if event.recipient_id:
            by_tenant[event.tenant_id].append(event)
    lookup = SegmentLookup()
    for tenant_id, tenant_events in by_tenant.items():
        for info in lookup(tenant_id=tenant_id):
            ids = {e.recipient_id for e in tenant_events if info.uses_profile or e.name in info.history_names}
            segments_refresh(tenant_id=tenant_id, recipient_ids=ids, segments=[info])


def segments_profiles_changed(*, tenant_id: int, recipient_ids: Iterable[int], history_changed: bool = False
                              ) -> None:
    """SIGNALBOX_PROFILE_CONSUMERS entry (apps/recipients/services): recipients were created or
    their profile changed (the segments that test profiles follow), or were merged or erased
    (every segment: their events moved or went)."""
    segments = [info for info in SegmentLookup()(tenant_id=tenant_id) if info.uses_profile or history_changed]
    segments_refresh(tenant_id=tenant_id, recipient_ids=recipient_ids, segments=segments)


def segments_recompute_due() -> int:
    """Tick job: recompute segments whose members drift with time alone (within_last_days) once
    they are SIGNALBOX_SEGMENT_RECOMPUTE_MINUTES old, and restart a recompute whose worker died
    (no progress for as long). Returns how many were scheduled."""
    cutoff = clock.now() - timedelta(minutes=settings.SIGNALBOX_SEGMENT_RECOMPUTE_MINUTES)
    scheduled = 0
    stale = Segment.objects.filter(status=Segment.Status.COMPUTING, updated_at__lt=cutoff)
    drifting = Segment.objects.filter(status=Segment.Status.READY, drifts=True, computed_at__lt=cutoff)
    with transaction.atomic():
        for segment in [*stale, *drifting]:
            segment_recompute_request(segment=segment)
            scheduled += 1
    return scheduled
