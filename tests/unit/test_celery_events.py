"""Workers publish each task event at once: with the threads pool and an event loop,
Celery 5.6.3's buffered events were dropped when a pool thread sent one while the
loop's thread was flushing the buffer (worker/celery_app.py)."""

from __future__ import annotations

from unittest import mock

from kombu import Connection

from worker.celery_app import UnbufferedEventDispatcher, celery_app


def test_task_events_are_published_at_once_even_when_the_worker_asks_for_a_buffer():
    with Connection("memory://") as connection:
        # The arguments the worker's Events bootstep gives when it runs an event loop.
        dispatcher = celery_app.events.Dispatcher(
            connection,
            hostname="worker-0@test",
            buffer_group=["task"],
            on_send_buffered=mock.Mock(),
        )
        assert isinstance(dispatcher, UnbufferedEventDispatcher)
        dispatcher.producer = mock.Mock()
        dispatcher.send("task-started", uuid="a-task")
        dispatcher.send("task-succeeded", uuid="a-task", result="1", runtime=0.1)

    published = dispatcher.producer.publish.call_args_list
    assert [call.kwargs["routing_key"] for call in published] == ["task.started", "task.succeeded"]
    assert [call.args[0]["uuid"] for call in published] == ["a-task", "a-task"]
    assert not dispatcher._group_buffer.get("task")
