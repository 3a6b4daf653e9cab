from celery import shared_task
from django.db import OperationalError

from apps.events import services


# A database hiccup is retried a few times; anything else leaves the events unprocessed for the
# sweeper (events_requeue_unprocessed), so nothing is lost either way.
@shared_task(name="events.process", autoretry_for=(OperationalError,), max_retries=3,
             retry_backoff=True)
def process_events(event_ids: list[int]) -> None:
    services.events_process(event_ids=event_ids)
