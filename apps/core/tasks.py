from celery import shared_task

from apps.core import services


@shared_task(name="core.tick", max_retries=0)
def tick() -> None:
    services.tick()
