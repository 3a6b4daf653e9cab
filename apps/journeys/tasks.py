from celery import shared_task

from apps.journeys import services


# Published after commit by a batch that parks a run at a webhook step, so that the call is made
# now rather than at the next tick (which still makes any call this task misses, and the retries).
@shared_task(name="journeys.call_webhooks", ignore_result=True)
def call_webhooks() -> None:
    services.journeys_call_webhooks()
