import gc
import os
from importlib import import_module

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from apps.core.wsgi import whole_body

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.prod")

application = whole_body(get_wsgi_application())

# Load the URLconf, and with it every view, now rather than at the first request; then take all
# that was loaded out of the garbage collector's scans (gc.freeze). These ~120,000 objects live as
# long as the process, and each full collection scanned them with all of the worker's threads
# stopped: 22-26 ms at start, more as the heap grows, against the API's p99 target of 25 ms
# (docs/performance.md). After the freeze a full collection scans what requests leave behind.
import_module(settings.ROOT_URLCONF)
gc.freeze()
