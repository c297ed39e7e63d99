"""Asking every web node to emit stored messages to its own sockets: one Redis channel
that each web node reads on its Socket.IO message queue's subscription
(web/sockets/message_queue.py) and hands to web/sockets/delivery_listener.py."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from common.redis_clients import app_redis

DELIVERY_CHANNEL = "system1:delivery"

# Deliveries per message on the channel: a resend sweep publishes thousands a second.
PUBLISH_CHUNK = 200


def publish_deliveries(deliveries: Sequence[tuple[str, dict[str, Any]]]) -> int:
    """Ask every web node to emit these (event, payload) pairs to its sockets in each
    payload's session room: one channel message per PUBLISH_CHUNK, in one round trip.

    Returns the number of web nodes that received the request. A Redis error
    propagates: the message stays due and the resend sweep tries again.
    """
    if not deliveries:
        return 0
    pipe = app_redis().pipeline(transaction=False)
    for start in range(0, len(deliveries), PUBLISH_CHUNK):
        chunk = deliveries[start : start + PUBLISH_CHUNK]
        request = {"deliveries": [{"event": e, "payload": p} for e, p in chunk]}
        pipe.publish(DELIVERY_CHANNEL, json.dumps(request))
    return max(int(nodes) for nodes in pipe.execute())
