"""The Celery app. Every CELERY_* setting lives in config/settings/base.py."""

import gc
import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_process_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

app = Celery("signalbox")
# https://docs.celeryq.dev/en/stable/django/first-steps-with-django.html
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def close_old_connections(**kwargs):
    """As Django does around a request: drop a connection that is broken or past CONN_MAX_AGE
    (CELERY_DB_REUSE_MAX stops Celery from closing every connection around every task)."""
    from django.db import close_old_connections

    close_old_connections()


@worker_ready.connect
@worker_process_init.connect
def freeze_what_was_loaded(**kwargs):
    """As config/wsgi.py does: take the modules and tasks loaded at start out of the garbage
    collector's scans, so that a full collection does not stop the worker's threads for 20-30 ms
    (worker_ready: the main process, where the threads pool runs tasks; worker_process_init: each
    prefork child)."""
    gc.freeze()
