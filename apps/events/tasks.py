from celery import shared_task

from apps.events import services


@shared_task(name="events.process", max_retries=3, default_retry_delay=5)
def process_events(event_ids: list[int]) -> None:
    services.events_process(event_ids=event_ids)
