"""Celery configuration: queues, routing, acknowledgments, prefetch and the
events Flower reads. Loaded by common/celery/app.py (`config_from_object`)."""

from kombu import Queue

from common.celery.task_names import (
    ASSISTANT_TURN_TASK,
    RECOVER_TASK,
    RESEND_TASK,
    TITLE_TASK,
    TODOS_TASK,
)
from common.settings import get_settings

_settings = get_settings()

broker_url = _settings.broker_url
broker_connection_retry_on_startup = True
# A broker that is down must not hang a web request: fail fast, answer 503.
broker_connection_timeout = 2
broker_transport_options = {
    # Unacknowledged tasks (a worker that died mid-turn) come back after this.
    # Longer than any turn, and than any countdown we schedule.
    "visibility_timeout": 900,
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
}

task_queues = (
    Queue(_settings.turn_queue, routing_key=_settings.turn_queue),
    Queue(_settings.delivery_queue, routing_key=_settings.delivery_queue),
    Queue(_settings.todo_queue, routing_key=_settings.todo_queue),
)
task_default_queue = _settings.turn_queue
task_routes = {
    ASSISTANT_TURN_TASK: {"queue": _settings.turn_queue},
    TITLE_TASK: {"queue": _settings.turn_queue},
    RESEND_TASK: {"queue": _settings.delivery_queue},
    RECOVER_TASK: {"queue": _settings.delivery_queue},
    TODOS_TASK: {"queue": _settings.todo_queue},
}

# Celery beat (one per deployment) runs the recovery sweep.
beat_schedule = {
    "recover-lost-work": {
        "task": RECOVER_TASK,
        "schedule": _settings.recovery_interval_s,
        # A sweep that could not run in time is skipped: the next one covers it.
        "options": {"expires": _settings.recovery_interval_s},
    },
}

task_serializer = "json"
accept_content = ["json"]
task_ignore_result = True
result_backend = None
# There is no result backend (a stateless DisabledBackend), so one instance may serve
# every thread; otherwise Celery builds one per thread, and gevent makes every web
# request a thread (docs/performance.md, "Result backend").
result_backend_thread_safe = True

# A turn is acknowledged only when done; a worker lost mid-turn gives it back.
task_acks_late = True
task_reject_on_worker_lost = True
# LLM turns are long: take one task at a time per pool slot.
worker_prefetch_multiplier = 1
# A worker stopped with SIGTERM (warm shutdown) stops taking tasks, waits for the running
# ones, and gives the ones it held but had not started (countdowns) back to the queue.
# A worker that loses the broker lets its running turns finish: each stores at most one
# reply (the database decides), and a redelivered copy finds it answered. (Celery 6
# will default to cancelling them; say so explicitly.)
worker_cancel_long_running_tasks_on_connection_loss = False

# Flower: task events, sent events, and task names that say what they do.
worker_send_task_events = True
task_send_sent_event = True

timezone = "UTC"
enable_utc = True
