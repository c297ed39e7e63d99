"""The Celery application. Importing it registers no tasks: the web process
uses it only to send tasks by name; workers load the task modules via
`include`."""

from celery import Celery

ASSISTANT_TURN_TASK = "system1.assistant_turn"
RESEND_TASK = "system1.resend_unacknowledged"
RECOVER_TASK = "system1.recover_lost_work"

celery_app = Celery("system1", include=["worker.turns", "worker.delivery"])
celery_app.config_from_object("celeryconfig")
