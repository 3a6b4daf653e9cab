"""The Celery app. Every CELERY_* setting lives in config/settings/base.py."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

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
