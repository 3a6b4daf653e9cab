from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from apps.messaging import pipeline


@shared_task(name="messaging.send", autoretry_for=(OperationalError,), max_retries=3,
             retry_backoff=True)
def send_message(message_id: int) -> None:
    outcome = pipeline.message_send(message_id=message_id)
    # A short back-off waits here; a longer one is a row with next_attempt_at that the tick's
    # messages_release_due picks up (long countdowns are redelivered by the Redis transport).
    retry_in = outcome.retry_in if outcome else None
    if retry_in is not None and retry_in <= settings.SIGNALBOX_SHORT_RETRY_SECONDS:
        send_message.apply_async((message_id,), countdown=retry_in)
