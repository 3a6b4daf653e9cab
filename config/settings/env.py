"""Reading the environment: a malformed value stops the process with one line naming the variable."""

import sys
from collections.abc import Callable
from typing import Any

import environ

env = environ.Env()

DATABASE_SCHEMES = {"postgres", "postgresql", "pgsql", "sqlite"}
REDIS_SCHEMES = {"redis", "rediss", "unix"}


def fail(name: str, problem: str) -> None:
    sys.exit(f"Signalbox configuration error: {name} {problem}")


def read(name: str, cast: Callable[..., Any], **kwargs: Any) -> Any:
    """`env.<cast>(name)` that turns a bad value into a one-line exit instead of a traceback."""
    try:
        return cast(name, **kwargs)
    except environ.ImproperlyConfigured:
        fail(name, "is required")
    except (ValueError, TypeError) as exc:
        fail(name, f"is malformed: {exc}")


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def database(default: str) -> dict:
    url = env.str("DATABASE_URL", default=default)
    if _scheme(url) not in DATABASE_SCHEMES:
        fail("DATABASE_URL", "must start with postgres:// or sqlite:/// (see README)")
    try:
        config = environ.Env.db_url_config(url)
    except Exception as exc:  # django-environ raises assorted errors on garbage
        fail("DATABASE_URL", f"is malformed: {type(exc).__name__}")
    if not config.get("NAME"):
        fail("DATABASE_URL", "names no database")
    return config


def redis_url() -> str | None:
    url = env.str("REDIS_URL", default="") or None
    if url is not None and _scheme(url) not in REDIS_SCHEMES:
        fail("REDIS_URL", "must start with redis://, rediss:// or unix://")
    return url
