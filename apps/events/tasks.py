from celery import shared_task
from django.db import OperationalError

from apps.events import services


# A database hiccup is retried a few times; otherwise the events stay unprocessed and the tick
# (events_requeue_unprocessed) schedules another drain, so nothing is lost either way.
@shared_task(name="events.drain", autoretry_for=(OperationalError,), max_retries=3,
             retry_backoff=True)
def drain_events() -> None:
    services.events_drain()
