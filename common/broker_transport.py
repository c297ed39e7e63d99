"""kombu's Redis transport, publishing through one Redis client per channel.

kombu's Redis channel builds a new `redis.Redis` client for every message it publishes
(`conn_or_acquire` without a client). The client's constructor fills its table of
response callbacks: about 60 us of CPU per publish, twice per PUT /user_message (the
task, and its task-sent event for Flower) and once per task event of a turn in the
worker (2.5% of the samples of each in py-spy profiles of `make bench`). One client is
built per channel and connection pool instead. A `redis.Redis` over a connection pool is
safe to share between threads and greenlets: each command takes a connection from the
pool and gives it back.

`install()` (worker/celery_app.py) makes it the transport of `redis://` URLs. Named by its
alias rather than by Celery's `broker_transport` (an import path): a connection then
still describes itself as `redis://...`, which Flower needs to read its queues.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
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
