"""Task events (common/celery/event_dispatcher.py), published to a real Redis broker.

Workers publish each task event, never buffer it: with the threads pool and an event
loop, Celery 5.6.3's buffered events were dropped when a pool thread sent one while the
loop's thread was flushing the buffer. A worker's events are published by a thread of
their own, in order, so that sending one never waits for Redis; and the web node's
task-sent events go out side by side: Celery publishes each under the dispatcher's lock,
a Redis round trip that every other greenlet of the node waited for.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from kombu import Connection

from common.celery.event_dispatcher import SystemEvents, UnbufferedEventDispatcher

WAIT_S = 10.0


@pytest.fixture
def app(redis_url: str) -> Iterator[Celery]:
    app = Celery("events-test", broker=redis_url, events=SystemEvents)
    app.conf.broker_pool_limit = 1  # one producer: a test can hold it
    yield app
    app.close()


@pytest.fixture
def published(redis_url: str) -> Iterator[list[dict[str, Any]]]:
    """The task events this process publishes on the broker from now on, in order
    (kombu's Redis fanout: one pub/sub channel per routing key, under the database's
    prefix)."""
    client = redis.Redis.from_url(redis_url)
    db = client.connection_pool.connection_kwargs.get("db", 0)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(f"/{db}.celeryev/task.*")
    events: list[dict[str, Any]] = []
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            message = pubsub.get_message(timeout=0.05)
            if message and message["type"] == "pmessage":
                envelope = json.loads(message["data"])
                body = envelope["body"]
                if envelope["properties"].get("body_encoding") == "base64":
                    body = base64.b64decode(body)
                event = json.loads(body)
                # A test stack's workers may publish to the same Redis: only this
                # process's events are the test's.
                if event.get("pid") == os.getpid():
                    events.append(event)

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    yield events
    stop.set()
    thread.join(WAIT_S)
    pubsub.close()
    client.close()


def wait_for(events: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + WAIT_S
    while len(events) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return events


def worker_dispatcher(app: Celery, connection: Connection) -> UnbufferedEventDispatcher:
    # The arguments the worker's Events bootstep gives when it runs an event loop.
    dispatcher = app.events.Dispatcher(
        connection,
        hostname="worker-0@test",
        buffer_group=["task"],
        on_send_buffered=lambda: None,
    )
    assert isinstance(dispatcher, UnbufferedEventDispatcher)
    return dispatcher


def in_thread(target: Any) -> bool:
    """Run `target` in a thread; whether it finished within WAIT_S."""
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(WAIT_S)
    return not thread.is_alive()


def test_task_events_are_published_not_buffered_even_when_the_worker_asks_for_a_buffer(
    app, redis_url, published
):
    with Connection(redis_url) as connection:
        dispatcher = worker_dispatcher(app, connection)
        dispatcher.send("task-started", uuid="a-task")
        dispatcher.send("task-succeeded", uuid="a-task", result="1", runtime=0.1)

        events = wait_for(published, 2)
        assert [(e["type"], e["uuid"]) for e in events] == [
            ("task-started", "a-task"),
            ("task-succeeded", "a-task"),
        ]
        assert not dispatcher._group_buffer.get("task")
        dispatcher.close()


def test_a_pool_thread_publishes_its_event_while_another_holds_the_dispatchers_lock(
    app, redis_url, published
):
    with Connection(redis_url) as connection:
        dispatcher = worker_dispatcher(app, connection)
        with dispatcher.mutex:  # as a thread in the middle of a publish would
            finished = in_thread(lambda: dispatcher.send("task-received", uuid="b-task"))

        assert finished
        assert [(e["type"], e["uuid"]) for e in wait_for(published, 1)] == [
            ("task-received", "b-task")
        ]
        dispatcher.close()


def test_sending_an_event_does_not_wait_for_a_producer(app, redis_url, published):
    with Connection(redis_url) as connection:
        dispatcher = worker_dispatcher(app, connection)
        with app.producer_pool.acquire(block=True):  # the pool's only producer
            finished = in_thread(lambda: dispatcher.send("task-started", uuid="d-task"))
            assert finished
            assert published == []  # sent, not yet published
        assert [(e["type"], e["uuid"]) for e in wait_for(published, 1)] == [
            ("task-started", "d-task")
        ]
        dispatcher.close()


def test_closing_publishes_the_events_still_queued(app, redis_url, published):
    with Connection(redis_url) as connection:
        dispatcher = worker_dispatcher(app, connection)
        for n in range(20):
            dispatcher.send("task-received", uuid=f"e-{n}")
        dispatcher.close()

        assert [e["uuid"] for e in wait_for(published, 20)] == [f"e-{n}" for n in range(20)]


def test_a_task_sent_event_is_published_apart_from_the_senders_call(app, published):
    # As Celery's send_task does in the web node: the app's dispatcher, the producer of
    # the task's own message (the pool's only one here, held until the call returns).
    dispatcher = app.amqp._event_dispatcher
    assert isinstance(dispatcher, UnbufferedEventDispatcher)

    def send() -> None:
        with app.producer_pool.acquire(block=True) as producer:
            dispatcher.publish("task-sent", {"uuid": "c-task"}, producer)

    with dispatcher.mutex:
        finished = in_thread(send)

    assert finished
    assert [(e["type"], e["uuid"]) for e in wait_for(published, 1)] == [("task-sent", "c-task")]
