"""The web node's message queue (web/sockets/message_queue.py) on the real Redis: Socket.IO
emits and delivery requests come out in the order they were published."""

from __future__ import annotations

import json
import threading
import time
import uuid

from common.redis_clients import app_redis
from web.sockets.message_queue import OrderedRedisManager


def _wait_for_subscribers(channel: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if dict(app_redis().pubsub_numsub(channel)).get(channel.encode()):
            return
        time.sleep(0.01)
    raise AssertionError(f"nothing subscribed to {channel} within {timeout_s}s")


def test_deliveries_and_socketio_emits_come_out_in_publish_order():
    # Channels of this test only: pub/sub ignores the Redis database, and a stack of the
    # integration tests may listen on the real ones.
    suffix = uuid.uuid4().hex
    sio_channel, delivery_channel = f"test-sio-{suffix}", f"test-delivery-{suffix}"
    received: list[tuple[str, int]] = []
    manager = OrderedRedisManager(
        on_delivery=lambda data: received.append(("delivery", json.loads(data)["n"])),
        channel=sio_channel,
        delivery_channel=delivery_channel,
    )
    listener = manager._listen()
    total, last = 600, -1

    def consume() -> None:
        for data in listener:
            n = json.loads(data)["n"]
            if n == last:
                return
            received.append(("emit", n))

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    _wait_for_subscribers(sio_channel)
    _wait_for_subscribers(delivery_channel)

    published: list[tuple[str, int]] = []
    pipe = app_redis().pipeline(transaction=False)
    for n in range(total):
        # Mostly tokens, and now and then a finished message, as a busy node sees them.
        kind = "delivery" if n % 10 == 9 else "emit"
        pipe.publish(delivery_channel if kind == "delivery" else sio_channel, json.dumps({"n": n}))
        published.append((kind, n))
    pipe.publish(sio_channel, json.dumps({"n": last}))
    pipe.execute()
    thread.join(timeout=10)
    listener.close()  # unsubscribes and closes its connection

    assert received == published
