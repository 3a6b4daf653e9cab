from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from apps.messaging import pipeline


@shared_task(name="messaging.send", autoretry_for=(OperationalError,), max_retries=3,
             retry_backoff=True)
def send_messages(message_ids: list[int] | int) -> None:
    ids = [message_ids] if isinstance(message_ids, int) else message_ids
    outcomes = pipeline.messages_send(message_ids=ids)
    # A short back-off waits here; a longer one is a row with next_attempt_at that the tick's
    # messages_release_due picks up (long countdowns are redelivered by the Redis transport).
    for message_id, outcome in outcomes.items():
        if outcome.retry_in is not None and outcome.retry_in <= settings.SIGNALBOX_SHORT_RETRY_SECONDS:
            send_messages.apply_async(([message_id],), countdown=outcome.retry_in)
