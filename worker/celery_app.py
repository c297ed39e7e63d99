"""The Celery application. Importing it registers no tasks: the web process
uses it only to send tasks by name; workers load the task modules via
`include`."""

from celery import Celery

from common.logging_setup import install_celery_logging

ASSISTANT_TURN_TASK = "system1.assistant_turn"
RESEND_TASK = "system1.resend_unacknowledged"
RECOVER_TASK = "system1.recover_lost_work"
TITLE_TASK = "system1.generate_execution_title"

celery_app = Celery("system1", include=["worker.turns", "worker.delivery", "worker.titles"])
celery_app.config_from_object("celeryconfig")
# Our log format (LOG_FORMAT) with task and request ids; task headers carry the ids.
install_celery_logging()
