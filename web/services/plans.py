"""Plans and purchases: System1 has no billing, and says so in Mojodex's shape."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from common.models import Task, UserTask
from web.extensions import db

PLAN_NAME = "System1 (no billing)"


def current_plan(user_id: str) -> dict[str, Any]:
    """One active, free plan without limits (no validity days, no task limit) and nothing
    to buy: the Mojodex web app then shows the plan as active and asks nothing more."""
    tasks = db.session.scalars(
        select(Task.name)
        .join(UserTask, UserTask.task_fk == Task.task_pk)
        .where(UserTask.user_id == user_id, UserTask.enabled.is_(True))
        .order_by(Task.name)
    ).all()
    plan = {
        "product_name": PLAN_NAME,
        "is_free_product": True,
        "remaining_days": None,
        "n_validity_days": None,
        "n_days_validity": None,
        "n_tasks_limit": None,
        "n_tasks_consumed": None,
        "tasks": list(tasks),
    }
    return {
        "purchase_status": "active",
        "current_purchases": [plan],
        "purchasable_products": [],
        "last_expired_purchase": [],
    }
