from celery import shared_task
from django.db import OperationalError

from apps.segments import services
from apps.segments.models import Segment


# A long recompute may outlast the default limits: chunks commit as they go, so a task cut
# short (or a worker lost) leaves a consistent part done; the tick restarts a stalled one.
@shared_task(name="segments.recompute", autoretry_for=(OperationalError,), max_retries=3,
             retry_backoff=True, time_limit=3600, soft_time_limit=3500)
def recompute_segment(segment_id: int) -> None:
    segment = Segment.objects.filter(pk=segment_id).first()
    if segment is not None:
        services.segment_recompute(segment)
