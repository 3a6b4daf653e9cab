"""pytest. PostgreSQL and Redis when DATABASE_URL / REDIS_URL are set, else SQLite and files."""

import os
import uuid

from config.settings.base import *  # noqa: F403
from config.settings.base import CACHES, DATABASES, REDIS_URL, VAR_DIR

# One id per test session, inherited by the worker subprocess the tests start, so that their
# broker keys, cache keys and folders never meet another session's or `make dev`'s.
TEST_RUN = os.environ.setdefault("SIGNALBOX_TEST_RUN", uuid.uuid4().hex[:12])

SECRET_KEY = "test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"  # noqa: S105
DEBUG = False
ALLOWED_HOSTS = ["*"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SIGNALBOX_CLOCK_OFFSET_ENABLED = True

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not :memory:, so the worker subprocess sees the same test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{TEST_RUN}.sqlite3")}
else:
    # Live-server request threads must not keep connections open past the test database's drop.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
# The worker subprocess is pointed at the test database the test session created.
if os.environ.get("SIGNALBOX_WORKER_DB_NAME"):
    DATABASES["default"]["NAME"] = os.environ["SIGNALBOX_WORKER_DB_NAME"]

if REDIS_URL:
    CACHES["default"]["KEY_PREFIX"] = f"test-{TEST_RUN}"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": 3600,
        "global_keyprefix": f"test-{TEST_RUN}:",
    }
else:
    CELERY_BROKER_FOLDER = VAR_DIR / f"test-broker-{TEST_RUN}"
    CELERY_BROKER_FOLDER.mkdir(exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_FOLDER),
        "data_folder_out": str(CELERY_BROKER_FOLDER),
        "control_folder": str(CELERY_BROKER_FOLDER / "control"),
    }
# Local provider simulators run on loopback.
SIGNALBOX_HTTP_ALLOW_PRIVATE = ["127.0.0.0/8", "::1/128"]
