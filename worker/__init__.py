"""Celery workers: the tasks of assistant turns, titles, delivery and recovery.

`celery -A worker worker -Q turns` finds the app (common/celery/app.py) as `worker.app`.
"""

from common.celery.app import celery_app

app = celery_app

__all__ = ["app", "celery_app"]
