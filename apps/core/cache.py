"""The cache: Django's RedisCache with one redis client per pool, and failure-tolerant helpers.

Django builds a new `redis.Redis` object for every cache call, and redis-py's constructor
registers ~170 response callbacks each time: about 0.1 ms of CPU per call, paid on every API
request (key lookup, drain flag). A client is thread-safe and cheap to share.
"""

import functools
import logging
import uuid

from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from django.db import transaction

logger = logging.getLogger(__name__)


class SharedClientRedisCacheClient(RedisCacheClient):
    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        clients = self.__dict__.setdefault("_clients", {})
        if index not in clients:
            clients[index] = self._client(connection_pool=self._get_connection_pool(write))
        return clients[index]


class SignalboxRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = SharedClientRedisCacheClient


# Hot paths (API-key lookup, the drain flag, usage stamps) read the cache as an optimisation:
# when it is down (Redis restarting) they must fall back to the database, never fail a request.
def cache_get(key: str, default=None):
    try:
        return cache.get(key, default)
    except Exception:
        logger.warning("cache unavailable: get %s", key, exc_info=True)
        return default


def cache_set(key: str, value, timeout) -> None:
    try:
        cache.set(key, value, timeout)
    except Exception:
        logger.warning("cache unavailable: set %s", key, exc_info=True)


def cache_add(key: str, value, timeout) -> bool | None:
    """True if added, False if the key existed, None if the cache could not be asked."""
    try:
        return cache.add(key, value, timeout)
    except Exception:
        logger.warning("cache unavailable: add %s", key, exc_info=True)
        return None


@functools.cache
def _count_script(client):
    """INCRBY, and EXPIRE at the first count, atomically in one round trip (cheaper than a pipeline)."""
    return client.register_script(
        "local n = redis.call('INCRBY', KEYS[1], ARGV[2]) "
        "if n == tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[1]) end return n")


def cache_count(key: str, timeout: int, amount: int = 1) -> int | None:
    """Add `amount` to a counter that expires `timeout` seconds after its first count; its new
    value, or None if the cache could not be asked. On Redis one round trip, atomic across
    processes; other caches add, then increment."""
    try:
        backend = caches["default"]
        if isinstance(backend, RedisCache):
            client = backend._cache.get_client(key, write=True)
            return _count_script(client)(keys=[backend.make_and_validate_key(key)], args=[timeout, amount])
        if backend.add(key, amount, timeout):
            return amount
        return backend.incr(key, amount)
    except ValueError:  # expired between add and incr: a new window's first count
        return amount
    except Exception:
        logger.warning("cache unavailable: count %s", key, exc_info=True)
        return None


class VersionedLookup:
    """A per-process memo (`self.found`, a dict the subclass fills) valid while a shared version
    in the cache is unchanged: one cache read per lookup object, i.e. per batch. Subclasses set
    VERSION_KEY and their own `_found = {}` / `_version = None`; `version_bump(VERSION_KEY)` on
    every edit drops every process's memo. Without a reachable cache nothing is kept."""

    VERSION_KEY: str
    _found: dict
    _version: str | None

    def __init__(self):
        cls = type(self)
        version = cache_get(cls.VERSION_KEY)
        if version is None and cache_add(cls.VERSION_KEY, uuid.uuid4().hex, None):
            version = cache_get(cls.VERSION_KEY)
        if version is None or version != cls._version:
            cls._found, cls._version = {}, version
        self.found = cls._found if version is not None else {}

    @classmethod
    def clear(cls) -> None:
        cls._found, cls._version = {}, None


def version_bump(key: str) -> None:
    """A new shared version now and again once the current transaction commits (a process that
    reloaded in between would otherwise keep what the edit's transaction had not yet committed)."""
    cache_set(key, uuid.uuid4().hex, None)
    transaction.on_commit(lambda: cache_set(key, uuid.uuid4().hex, None))
