"""Publishing Celery tasks after the transaction that made their rows commits."""

import logging
from functools import partial

from django.db import transaction

logger = logging.getLogger(__name__)


def _publish(task, args, kwargs) -> None:
    try:
        # retry/retry_policy: a short retry (CELERY_TASK_PUBLISH_RETRY_POLICY), then give up.
        task.apply_async(args=args, kwargs=kwargs, retry=True)
    except Exception:
        # The data is committed; the periodic sweepers find rows whose task never ran.
        logger.warning("could not publish %s%r; a sweeper will pick it up", task.name, args,
                       exc_info=True)


def enqueue_on_commit(task, *args, **kwargs) -> None:
    """Publish `task(*args, **kwargs)` once the current transaction commits; never raises."""
    transaction.on_commit(partial(_publish, task, args, kwargs), robust=True)


def enqueue_now(task, *args, **kwargs) -> None:
    """Publish `task(*args, **kwargs)` at once (outside any transaction); never raises."""
    _publish(task, args, kwargs)
