"""The Celery application. Importing it registers no tasks: the web process
uses it only to send tasks by name; workers load the task modules via
`include`."""

from typing import Any

from celery import Celery
from celery.app.events import Events
from celery.events import EventDispatcher
from celery.signals import worker_ready

from common import broker_transport
from common.gc_tuning import freeze_startup_objects
from common.logging_setup import install_celery_logging

ASSISTANT_TURN_TASK = "system1.assistant_turn"
RESEND_TASK = "system1.resend_unacknowledged"
RECOVER_TASK = "system1.recover_lost_work"
TITLE_TASK = "system1.generate_execution_title"


class UnbufferedEventDispatcher(EventDispatcher):
    """Publishes every event at once, never through the per-group buffer.

    Why: a worker with an event loop (ours: Redis broker, `-P threads`) buffers its
    `task-*` events and flushes them from the loop's thread, but with the threads pool
    `task-started` and `task-succeeded` are sent from the pool threads. In Celery 5.6.3
    `EventDispatcher.flush` publishes the buffer list and then empties it (`events[:] =
    []`) while `send` appends to it without the lock: an event a pool thread appends
    during the publish (a Redis round trip) is dropped, never sent. Turns lost their
    started/succeeded events that way and Flower kept them RECEIVED forever (celery
    issue #10434, fixed upstream by PR #10435). Publishing directly, under the
    dispatcher's lock, is what Celery does for workers without an event loop; an event
    costs one Redis PUBLISH instead of a share of a batched one.
    """

    def __init__(
        self, *args: Any, buffer_group: Any = None, on_send_buffered: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)


class SystemEvents(Events):
    dispatcher_cls = UnbufferedEventDispatcher


broker_transport.install()
celery_app = Celery(
    "system1",
    include=["worker.turns", "worker.delivery", "worker.titles"],
    events=SystemEvents,
)
celery_app.config_from_object("celeryconfig")
# Our log format (LOG_FORMAT) with task and request ids; task headers carry the ids.
install_celery_logging()


@worker_ready.connect
def _freeze_startup_objects(**_: Any) -> None:
    # Tasks run in this process (threads pool): what exists once it is ready lives as long
    # as the worker.
    freeze_startup_objects()
