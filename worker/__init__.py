"""Celery workers: assistant turns, delivery and resend.

`celery -A worker worker -Q turns` finds the app as `worker.app`.
"""

from worker.celery_app import celery_app

app = celery_app

__all__ = ["app", "celery_app"]
