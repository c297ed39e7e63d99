"""Celery task for assistant turns. Takes an id, never an object."""

from __future__ import annotations

from worker.assistant_turn import AssistantTurn
from worker.celery_app import ASSISTANT_TURN_TASK, celery_app


@celery_app.task(name=ASSISTANT_TURN_TASK, acks_late=True, reject_on_worker_lost=True)
def assistant_turn(user_message_pk: int) -> int | None:
    """Answer the stored user message `user_message_pk`; return the reply's pk."""
    return AssistantTurn(user_message_pk).run()
