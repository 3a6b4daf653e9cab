"""Django's RedisCache, keeping one redis client per connection pool.

Django builds a new `redis.Redis` object for every cache call, and redis-py's constructor
registers ~170 response callbacks each time: about 0.1 ms of CPU per call, paid on every API
request (key lookup, drain flag). A client is thread-safe and cheap to share.
"""

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


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
