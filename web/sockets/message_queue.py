"""The web node's Socket.IO message queue: Socket.IO's Redis channel and the delivery
channel read on one subscription, by one listener.

Why one: streamed tokens (`mojo_token`, `draft_token`) reach the node on Socket.IO's
channel, finished messages (`mojo_message`, `draft_message`) on the delivery channel
(common/delivery/publishing.py). The worker publishes the last token before the message,
and Redis sends a subscriber connection its messages in publish order; but with two
connections read by two threads, a loaded node could emit `mojo_message` before the last
`mojo_token` (a client then showed a partial text after the final one). Read here, a
session's events reach its sockets in the order they were published.

It is python-socketio's pub/sub manager with `_publish` and `_listen`, the two methods
its message-queue backends implement.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import redis
import socketio

from common.delivery.publishing import DELIVERY_CHANNEL
from common.redis_clients import app_redis, subscriber_redis

log = logging.getLogger(__name__)

# Flask-SocketIO's default channel: the workers' write-only emitters publish there.
SOCKETIO_CHANNEL = "flask-socketio"
# Reconnection backoff of the listener while Redis is down.
FIRST_RECONNECT_WAIT_S = 0.5
MAX_RECONNECT_WAIT_S = 5.0


class OrderedRedisManager(socketio.PubSubManager):
    """Socket.IO's Redis message queue that also hands each delivery request, in order
    with the emits around it, to `on_delivery` (the raw channel message)."""

    name = "system1-redis"

    def __init__(
        self,
        on_delivery: Callable[[bytes], None],
        channel: str = SOCKETIO_CHANNEL,
        delivery_channel: str = DELIVERY_CHANNEL,
    ):
        super().__init__(channel=channel)
        self._on_delivery = on_delivery
        self._delivery_channel = delivery_channel

    def _publish(self, data: dict) -> int | None:
        # As python-socketio's own backends: an emit to other nodes is best effort, a
        # Redis error is logged, not raised into the handler that emitted.
        try:
            return app_redis().publish(self.channel, self.json.dumps(data))
        except redis.RedisError as exc:
            log.error("could not publish to the Socket.IO channel: %s", exc)
            return None

    def _listen(self) -> Iterator[bytes]:
        socketio_channel = self.channel.encode()
        delivery_channel = self._delivery_channel.encode()
        wait_s = FIRST_RECONNECT_WAIT_S
        while True:
            client = subscriber_redis()
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel, self._delivery_channel)
                wait_s = FIRST_RECONNECT_WAIT_S
                for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    if message["channel"] == socketio_channel:
                        yield message["data"]
                    elif message["channel"] == delivery_channel:
                        self._deliver(message["data"])
            except redis.RedisError as exc:
                log.warning("message queue lost Redis (%s); retrying in %.1fs", exc, wait_s)
            finally:
                pubsub.close()
                client.close()
            self.server.sleep(wait_s)  # a greenlet's sleep under gevent
            wait_s = min(wait_s * 2, MAX_RECONNECT_WAIT_S)

    def _deliver(self, data: bytes) -> None:
        try:
            self._on_delivery(data)
        except Exception:
            # One bad request must not stop the node's listener; the sweep resends.
            log.exception("delivery request failed: %.200r", data)
