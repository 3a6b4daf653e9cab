import gc
import os
from importlib import import_module

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.prod")

application = get_wsgi_application()

# Load the URLconf, and with it every view, now rather than at the first request; then take all
# that was loaded out of the garbage collector's scans (gc.freeze). These objects live as long as
# the process, and scanning them made each full collection stop all of a worker's threads for
# 80-120 ms, which set the API's p99 (docs/performance.md); after the freeze a full collection
# scans what requests leave behind, a few ms.
import_module(settings.ROOT_URLCONF)
gc.freeze()
