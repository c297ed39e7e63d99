"""Celery's event dispatcher, publishing task events from a thread of its own.

Why: Celery 5.6's `EventDispatcher.flush` drops events that pool threads send while it
publishes (celery#10434): Flower showed turns RECEIVED forever. It can go once the
pinned Celery carries the fix (PR #10435) and a benchmark shows the inline publish costs
the first token nothing; see docs/performance.md, "Celery task events".
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from celery.app.events import Events
from celery.events import Event, EventDispatcher, group_from
from celery.utils.time import utcoffset as celery_utcoffset

log = logging.getLogger(__name__)

# How long closing a dispatcher waits for the events still queued (a broker that is down
# must not hold a worker's shutdown).
CLOSE_TIMEOUT_S = 5.0


class UnbufferedEventDispatcher(EventDispatcher):
    """Publishes every event, in the order sent, from a thread of its own (a greenlet in a
    web node), never through the per-group buffer that loses events (celery#10434)."""

    def __init__(
        self, *args: Any, buffer_group: Any = None, on_send_buffered: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._publisher: threading.Thread | None = None
        self._publisher_lock = threading.Lock()

    def send(
        self,
        type: str,
        blind: bool = False,
        utcoffset: Any = None,  # Celery's parameter; the event's offset is computed here
        retry: bool = False,
        retry_policy: Any = None,
        Event: Any = Event,
        **fields: Any,
    ) -> None:
        """Queue the event for this dispatcher's publisher thread, and return: published
        inline, `task-received` and `task-started` were round trips on the path of every
        turn's first token (docs/performance.md, "Celery task events")."""
        if not self.enabled:
            return
        group = group_from(type)
        if self.groups and group not in self.groups:
            return
        self._queue(type, fields, blind, Event, retry, retry_policy)

    def _queue(
        self,
        type: str,
        fields: dict,
        blind: bool,
        Event: Any,
        retry: bool,
        retry_policy: Any,
    ) -> None:
        clock = None if blind else self.clock.forward()
        event = Event(
            type,
            hostname=self.hostname,
            utcoffset=celery_utcoffset(),
            pid=self.pid,
            clock=clock,
            **fields,
        )
        self._ensure_publisher()
        self._outbox.put((event, type.replace("-", "."), retry, retry_policy))

    def _ensure_publisher(self) -> None:
        if self._publisher is not None:
            return
        with self._publisher_lock:
            if self._publisher is None:
                self._publisher = threading.Thread(
                    target=self._publish_outbox, name="celery-events", daemon=True
                )
                self._publisher.start()

    def _publish_outbox(self) -> None:
        while True:
            item = self._outbox.get()
            if item is None:
                return
            event, routing_key, retry, retry_policy = item
            try:
                with self.app.producer_pool.acquire(block=True) as producer:
                    self._publish(
                        event, producer, routing_key, retry=retry, retry_policy=retry_policy
                    )
            except Exception:  # a monitoring event is not worth the thread
                log.warning("could not publish the %s event", event.get("type"), exc_info=True)

    def close(self) -> None:
        """Publish what was sent (a worker's last heartbeat, `worker-offline`), then close."""
        publisher = self._publisher
        if publisher is not None:
            self._outbox.put(None)
            publisher.join(CLOSE_TIMEOUT_S)
            self._publisher = None
        super().close()

    def publish(
        self,
        type: str,
        fields: dict,
        producer: Any,
        blind: bool = False,
        Event: Any = Event,
        retry: bool = False,
        retry_policy: Any = None,
        **kwargs: Any,
    ) -> None:
        """An event of the caller's (the web node's task-sent events, from Celery's
        `send_task`): queued for the publisher thread like the others; `producer` is not
        used. Celery would publish it under the dispatcher's lock, one PUT at a time
        (docs/performance.md, "Celery task events"). The task itself is published before,
        by `send_task`: a worker may start it at once.
        """
        self._queue(type, fields, blind, Event, retry, retry_policy)


class SystemEvents(Events):
    dispatcher_cls = UnbufferedEventDispatcher
