"""The start of a task execution: its first message or run marks it started."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update

from common.delivery.emitter import emit_to_session
from common.models import UserTaskExecution
from web.extensions import db


def execution_for_session(session_id: str) -> UserTaskExecution | None:
    return db.session.scalar(
        select(UserTaskExecution).where(
            UserTaskExecution.session_id == session_id, UserTaskExecution.deleted_at.is_(None)
        )
    )


def mark_started(execution: UserTaskExecution) -> None:
    """Set the start date once and tell the room (`user_task_execution_start`).

    A conditional UPDATE decides, so two first messages cannot both start it.
    """
    now = datetime.now(UTC)
    started = db.session.scalar(
        update(UserTaskExecution)
        .where(
            UserTaskExecution.user_task_execution_pk == execution.user_task_execution_pk,
            UserTaskExecution.start_date.is_(None),
        )
        .values(start_date=now)
        .returning(UserTaskExecution.start_date)
    )
    db.session.commit()
    if started is not None:
        emit_to_session(
            "user_task_execution_start",
            {
                "start_date": started.isoformat(),
                "user_task_execution_pk": execution.user_task_execution_pk,
            },
            execution.session_id,
        )
