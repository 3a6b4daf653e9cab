"""Settings shared by every environment. Values come from the environment (django-environ).

https://docs.djangoproject.com/en/5.2/ref/settings/
"""

from pathlib import Path

from kombu import Queue

from config.settings.env import database, env, fail, read, redis_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"
VAR_DIR.mkdir(exist_ok=True)

# https://docs.djangoproject.com/en/5.2/ref/settings/#debug
DEBUG = read("DEBUG", env.bool, default=False)
# https://docs.djangoproject.com/en/5.2/ref/settings/#secret-key (prod requires it: see prod.py)
SECRET_KEY = env.str("SECRET_KEY", default="")
# https://docs.djangoproject.com/en/5.2/ref/settings/#allowed-hosts
ALLOWED_HOSTS = read("ALLOWED_HOSTS", env.list, default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = read("CSRF_TRUSTED_ORIGINS", env.list, default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "apps.core",
    "apps.tenants",
    "apps.recipients",
    "apps.content",
    "apps.journeys",
    "apps.events",
    "apps.messaging",
    "apps.delivery",
    "apps.policy",
    "apps.segments",
    "apps.broadcasts",
    "apps.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "apps.api.middleware.GzipRequestMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# https://docs.djangoproject.com/en/5.2/ref/databases/
# Default: a SQLite file under var/ so `make dev` needs no server. Production: PostgreSQL.
DATABASES = {"default": database(default=f"sqlite:///{VAR_DIR / 'signalbox.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file: WAL lets readers run beside the writer, IMMEDIATE
    # takes the write lock at BEGIN (no deadlock on lock upgrade), and the timeout waits for it
    # instead of failing with "database is locked".
    # https://docs.djangoproject.com/en/5.2/ref/databases/#sqlite-notes
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    # Django's backend whose health check sends nothing while the server has said nothing
    # (apps/core/postgresql/base.py).
    DATABASES["default"]["ENGINE"] = "apps.core.postgresql"
    # https://docs.djangoproject.com/en/5.2/ref/databases/#persistent-connections
    DATABASES["default"]["CONN_MAX_AGE"] = read("CONN_MAX_AGE", env.int, default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Cross-process state (API-key cache, breaker state, rate counters, the test clock offset) goes
# through Django's cache: Redis when REDIS_URL is set, else a database table so no Redis is needed.
# https://docs.djangoproject.com/en/5.2/topics/cache/
REDIS_URL = redis_url()
CACHE_TABLE = "signalbox_cache"
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "apps.core.cache.SignalboxRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "sb",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": CACHE_TABLE,
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]

LOGIN_URL = "admin:login"
# A batch of 1,000 events fits; larger bodies get 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# https://www.django-rest-framework.org/api-guide/settings/
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["apps.api.authentication.SecretKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["apps.api.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
# https://drf-spectacular.readthedocs.io/en/latest/settings.html
SPECTACULAR_SETTINGS = {
    "TITLE": "Signalbox API",
    "DESCRIPTION": (
        "Native API: `Authorization: Bearer <secret API key>`. Recipients are addressed by "
        "`external_id`. Errors: `{\"error\": {\"type\", \"message\", \"fields\"}}`. "
        "The Segment HTTP tracking API is served at `/v1/` (write key as Basic-auth user name). "
        "A tenant with a rate limit gets `RateLimit-Limit`, `RateLimit-Remaining` and "
        "`RateLimit-Reset` on every response, and `429` with `Retry-After` over it."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Swagger UI from the installed sidecar package: the docs work with no internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": read("LOG_LEVEL", env.str, default="INFO")},
}

# --- Celery -----------------------------------------------------------------------------------
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
# Without REDIS_URL, kombu's filesystem transport under var/ stands in for a broker (make dev).
CELERY_BROKER_URL = REDIS_URL or "filesystem://"
CELERY_BROKER_FOLDER = VAR_DIR / "broker"
if REDIS_URL:
    # Longer than any task may run (time limits below), so a running task is not redelivered.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
else:
    CELERY_BROKER_FOLDER.mkdir(exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_FOLDER),
        "data_folder_out": str(CELERY_BROKER_FOLDER),
        "control_folder": str(CELERY_BROKER_FOLDER / "control"),
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
# Celery closes every database connection before and after each task (celery/fixups/django.py)
# unless told to reuse them, and a reconnect costs more than a one-message send. With this set,
# config/celery.py applies Django's own rule instead (CONN_MAX_AGE, health checks, errors).
CELERY_DB_REUSE_MAX = 1_000_000
# A task is acknowledged when it finishes, and redelivered if its worker dies mid-way.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = [Queue(name) for name in ("events", "delivery", "scheduler", "default")]
CELERY_TASK_CREATE_MISSING_QUEUES = False
# Each task name pattern → its queue; add a line with each new task module.
CELERY_TASK_ROUTES = {
    "core.*": {"queue": "scheduler"},
    "events.*": {"queue": "events"},
    "messaging.*": {"queue": "delivery"},
    "segments.*": {"queue": "default"},
    "journeys.*": {"queue": "default"},
    "broadcasts.*": {"queue": "default"},
}
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "tick": {
        "task": "core.tick",
        "schedule": read("TICK_SECONDS", env.float, default=5.0),
        # A tick nobody ran in time is replaced by the next one, never piled up.
        "options": {"queue": "scheduler", "expires": 30},
    },
}
# Publishing after commit: a short retry, then give up (the row is committed; sweepers pick it up).
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}

# --- Signalbox --------------------------------------------------------------------------------
# Fallbacks when no tenant in a hierarchy sets its own.
SIGNALBOX_DEFAULT_LOCALE = "en"
SIGNALBOX_DEFAULT_TIMEZONE = "UTC"
# Only tests move the clock (apps/core/clock.py); production reads the real time.
SIGNALBOX_CLOCK_OFFSET_ENABLED = False
# Jobs run by the periodic `tick` (apps/core/services.py), in order.
SIGNALBOX_TICK_JOBS = [
    "apps.tenants.services.api_keys_record_usage",
    "apps.events.services.events_requeue_unprocessed",
    "apps.events.idempotency.idempotency_keys_expire",
    "apps.messaging.services.messages_release_due",
    "apps.messaging.services.messages_rescue_stuck",
    # Delays ending, waits timing out (apps/journeys/services.py).
    "apps.journeys.services.journeys_advance_due",
    # Webhook steps' HTTP calls, outside any transaction.
    "apps.journeys.services.journeys_call_webhooks",
    # Segments whose members drift with time (within_last_days), and stalled recomputes.
    "apps.segments.services.segments_recompute_due",
    # Scheduled broadcasts starting, stalled fan-outs going on, finished ones completed.
    "apps.broadcasts.services.broadcasts_tick",
]
# Services called with every batch of committed events (`events=[Event, …]`): the journey
# engine plugs in here; policy sets and clears recipients' flags (docs/policy.md).
SIGNALBOX_EVENT_CONSUMERS: list[str] = ["apps.policy.services.flags_from_events",
                                        "apps.segments.services.segments_consume",
                                        "apps.journeys.services.journeys_consume"]
# Called with (tenant_id=, recipient_ids=) when recipients are created or their profile changes,
# is merged or erased (apps/recipients/services.py): segments re-evaluate their profile tests.
SIGNALBOX_PROFILE_CONSUMERS: list[str] = ["apps.segments.services.segments_profiles_changed"]
# Called with (tenant_id=, segment_key=, joined=[ids], left=[ids]) when members join or leave a
# segment (docs/segments.md): journeys triggered by the segment start and end runs.
SIGNALBOX_SEGMENT_CONSUMERS: list[str] = ["apps.journeys.services.journeys_segment_changed"]
# Recipients per transaction of a segment's full recompute.
SIGNALBOX_SEGMENT_CHUNK = read("SIGNALBOX_SEGMENT_CHUNK", env.int, default=5000)
# Segments with time-relative conditions (within_last_days) are recomputed this often (the tick).
SIGNALBOX_SEGMENT_RECOMPUTE_MINUTES = read("SIGNALBOX_SEGMENT_RECOMPUTE_MINUTES", env.int, default=15)
# Journey runs advanced per transaction by the tick job journeys_advance_due (SKIP LOCKED batches).
SIGNALBOX_JOURNEY_DUE_BATCH = read("SIGNALBOX_JOURNEY_DUE_BATCH", env.int, default=500)
# Broadcasts (docs/broadcasts.md): recipients per fan-out page (one transaction, one
# message_create_many); a sending broadcast whose fan-out has not moved for this long is picked up
# by the tick; progress counts are cached this long.
SIGNALBOX_BROADCAST_PAGE = read("SIGNALBOX_BROADCAST_PAGE", env.int, default=2000)
SIGNALBOX_BROADCAST_STALL_SECONDS = read("SIGNALBOX_BROADCAST_STALL_SECONDS", env.int, default=60)
SIGNALBOX_BROADCAST_PROGRESS_SECONDS = 3
# The drain's wake-up after events are committed is coalesced per process: at most one every
# this many seconds (apps.events.services._DrainWakeUp); 0: one per commit, in the request (the
# default without Redis, whose database cache would give the waking thread its own connection).
SIGNALBOX_EVENT_WAKE_UP_SECONDS = read("SIGNALBOX_EVENT_WAKE_UP_SECONDS", env.float,
                                       default=0.01 if REDIS_URL else 0)
# An event still unprocessed this long after it was received is re-enqueued by the tick.
SIGNALBOX_EVENT_REQUEUE_AFTER_SECONDS = read("SIGNALBOX_EVENT_REQUEUE_AFTER_SECONDS", env.int, default=60)
# Delivery: attempts before a message fails; exponential back-off with full jitter between them.
SIGNALBOX_MESSAGE_MAX_ATTEMPTS = 6
SIGNALBOX_RETRY_BASE_SECONDS = 2
SIGNALBOX_RETRY_MAX_SECONDS = 3600
# Back-offs up to this long are waited out by the task; longer ones by the tick.
SIGNALBOX_SHORT_RETRY_SECONDS = 30
# Circuit breaker per (tenant, provider): opens after this many transient failures in a row,
# lets one probe through after the cool-down (apps/delivery/breaker.py).
SIGNALBOX_BREAKER_THRESHOLD = 5
SIGNALBOX_BREAKER_COOL_DOWN_SECONDS = 30
# A message `sending` (or `queued` with no task) this long is re-enqueued by the tick.
# Messages per `messaging.send` task, and threads a worker process makes a batch's provider
# calls in (sends are I/O-bound). Without Redis the breaker state lives in the database, so the
# embedded mode sends serially.
SIGNALBOX_SEND_BATCH = read("SIGNALBOX_SEND_BATCH", env.int, default=50)
SIGNALBOX_SEND_THREADS = read("SIGNALBOX_SEND_THREADS", env.int, default=50 if REDIS_URL else 1)
SIGNALBOX_MESSAGE_STUCK_SECONDS = read("SIGNALBOX_MESSAGE_STUCK_SECONDS", env.int, default=300)
# Networks the outbound HTTP client may reach although they are private (apps/delivery/http.py).
# Empty in production; dev and tests allow loopback for local provider simulators.
SIGNALBOX_HTTP_ALLOW_PRIVATE = read("SIGNALBOX_HTTP_ALLOW_PRIVATE", env.list, default=[])
# Fernet keys for provider credentials, newest first (apps/core/crypto.py); empty: derived
# from SECRET_KEY.
SIGNALBOX_ENCRYPTION_KEYS = read("SIGNALBOX_ENCRYPTION_KEYS", env.list, default=[])
# How long an API key lookup is cached; revocation clears the entry at once. Each process also
# keeps what it read for SIGNALBOX_API_KEY_MEMO_SECONDS (0: never), so a key revoked elsewhere
# is refused by it within that time.
SIGNALBOX_API_KEY_CACHE_SECONDS = 300
SIGNALBOX_API_KEY_MEMO_SECONDS = read("SIGNALBOX_API_KEY_MEMO_SECONDS", env.float, default=1.0)
# Requests per second a tenant's API keys may make when neither it nor an ancestor sets one (0: none).
SIGNALBOX_API_RATE_LIMIT = read("SIGNALBOX_API_RATE_LIMIT", env.int, default=0)
if SIGNALBOX_API_RATE_LIMIT < 0:
    fail("SIGNALBOX_API_RATE_LIMIT", "must be 0 (no limit) or a number of requests per second")
# Templates: compiled versions kept per process (LRU by version id; versions never change), and
# the most segments an SMS may take with a template's sample data.
SIGNALBOX_TEMPLATE_CACHE_SIZE = 512
SIGNALBOX_SMS_MAX_SEGMENTS = read("SIGNALBOX_SMS_MAX_SEGMENTS", env.int, default=3)
# Policy (docs/policy.md): the address recipients reach the hosted preference and unsubscribe
# pages at (links in emails are absolute), and how long such a link works. RFC 8058 needs https.
SIGNALBOX_PUBLIC_URL = read("SIGNALBOX_PUBLIC_URL", env.str, default="http://localhost:8000")
SIGNALBOX_PREFERENCE_LINK_MAX_AGE_DAYS = read("SIGNALBOX_PREFERENCE_LINK_MAX_AGE_DAYS", env.int, default=90)
