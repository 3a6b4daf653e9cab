from celery import shared_task
from django.db import OperationalError

from apps.broadcasts import services


@shared_task(name="broadcasts.fan_out", autoretry_for=(OperationalError,), max_retries=3, retry_backoff=True)
def fan_out(broadcast_id: int) -> None:
    services.broadcast_fan_out(broadcast_id=broadcast_id)
