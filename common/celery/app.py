"""The Celery application shared by web nodes (which send tasks by name) and workers
(which run them). Configured from the top-level celeryconfig.py; importing it registers
no task: workers load the task modules of worker/ through `include`."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_ready

from common.celery import broker_transport
from common.celery.event_dispatcher import SystemEvents
from common.gc_tuning import freeze_startup_objects
from common.logging_setup import install_celery_logging

broker_transport.install()
celery_app = Celery(
    "system1",
    include=[
        "worker.turns",
        "worker.delivery_sweep",
        "worker.recovery",
        "worker.titles",
        "worker.todos",
    ],
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
