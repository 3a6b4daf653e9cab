"""Reads for broadcasts: the audience in keyset pages, and progress from the messages' states."""

from django.conf import settings
from django.db.models import Count

from apps.broadcasts.models import Broadcast, BroadcastRecipient
from apps.core.cache import cache_get, cache_set
from apps.messaging.models import Message, Status
from apps.segments.selectors import segment_member_ids

# Message statuses → the progress bar's counts.
BUCKETS = {
    Status.SCHEDULED: "queued", Status.QUEUED: "queued", Status.SENDING: "queued",
    Status.SENT: "sent", Status.DELIVERED: "sent",
    Status.SUPPRESSED: "suppressed",
    Status.FAILED: "failed", Status.BOUNCED: "failed", Status.EXPIRED: "failed",
    Status.CANCELLED: "cancelled",
}
DONE = ("sent", "suppressed", "failed", "cancelled")


def audience_ids(broadcast: Broadcast, *, after_id: int = 0, limit: int = 5000) -> list[int]:
    """The next page of the broadcast's recipient ids, in id order (keyset: the last id seen)."""
    if broadcast.segment_id:
        return segment_member_ids(broadcast.segment, after_id=after_id, limit=limit)
    return list(BroadcastRecipient.objects.filter(broadcast=broadcast, recipient_id__gt=after_id)
                .order_by("recipient_id").values_list("recipient_id", flat=True)[:limit])


def broadcast_progress(*, broadcast: Broadcast) -> dict:
    """Status and counts for the progress bar and the API: targeted, created (fanned out so
    far), queued / sent / suppressed / failed / cancelled, and the percentage done.

    The counts are one GROUP BY over the (broadcast, status) index, cached for
    SIGNALBOX_BROADCAST_PROGRESS_SECONDS: many page loads cost one query per few seconds."""
    key = f"broadcast-progress:{broadcast.pk}"
    counts = cache_get(key)
    if counts is None:
        counts = dict.fromkeys([*DONE, "queued"], 0)
        rows = (Message.objects.filter(broadcast=broadcast).values_list("status")
                .annotate(n=Count("id")).order_by())
        for status, n in rows:
            counts[BUCKETS[status]] += n
        cache_set(key, counts, settings.SIGNALBOX_BROADCAST_PROGRESS_SECONDS)
    targeted = max(broadcast.targeted, broadcast.created_count)
    done = sum(counts[name] for name in DONE)
    finished = broadcast.status in (Broadcast.Status.COMPLETED, Broadcast.Status.CANCELLED)
    percent = 100 if finished and not counts["queued"] else (
        min(100, int(100 * done / targeted)) if targeted else 0)
    return {"status": broadcast.status, "targeted": targeted, "created": broadcast.created_count,
            **counts, "percent": percent}
