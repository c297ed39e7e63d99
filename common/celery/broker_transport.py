"""kombu's Redis transport, publishing through one Redis client per channel.

Why: kombu 5.x builds a new `redis.Redis` client for every message it publishes, and the
constructor's CPU is paid on every PUT /user_message and task event. It can go when kombu
reuses its publishing client (docs/performance.md, "Broker publishes").

`install()` (common/celery/app.py) makes it the transport of `redis://` URLs, by alias so
that a connection still describes itself as `redis://...`, which Flower reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    """Publishes through one client per connection pool: a `redis.Redis` over a pool is
    safe to share between threads and greenlets."""

    _publishing_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        # A channel drops its pools after a fork or a connection error: a client of an
        # old pool is replaced, never reused.
        pool = self.pool
        if self._publishing_client is None or self._publishing_client.connection_pool is not pool:
            self._publishing_client = self._create_client()
        yield self._publishing_client


class Transport(kombu_redis.Transport):
    Channel = Channel


def install() -> None:
    """Make this the transport of `redis://` broker URLs in this process."""
    TRANSPORT_ALIASES["redis"] = f"{__name__}:Transport"
