"""`make dev`: SQLite and the filesystem broker unless DATABASE_URL / REDIS_URL say otherwise."""

from config.settings.base import *  # noqa: F403
from config.settings.base import SECRET_KEY as _SECRET_KEY

DEBUG = True
SECRET_KEY = _SECRET_KEY or "dev-only-insecure-key-do-not-use-in-production-0123456789"
ALLOWED_HOSTS = ["*"]
# Local provider simulators run on loopback.
SIGNALBOX_HTTP_ALLOW_PRIVATE = ["127.0.0.0/8", "::1/128"]
