"""Celery task for assistant turns. Takes an id, never an object."""

from __future__ import annotations

import logging

import openai
from celery import Task
from sqlalchemy.exc import OperationalError

from common import llm, metrics
from common.celery.app import celery_app
from common.celery.task_names import ASSISTANT_TURN_TASK
from common.llm.retry_after import requested_wait_s
from common.settings import get_settings
from worker.assistant_turn import AssistantTurn, TurnDeadlineExceeded

log = logging.getLogger(__name__)

# A turn that loses the database (PostgreSQL restarting) is tried again this many times,
# after 1, 2, 4... s: it finishes seconds after the database is back, where waiting for
# its lease to run out and the recovery sweep took up to TURN_LEASE_S + RECOVERY_INTERVAL_S.
DATABASE_RETRIES = 6
DATABASE_RETRY_BACKOFF_S = 1.0


def _refused(error: BaseException) -> bool:
    """Whether the provider refused this request for what it is (a 4xx other than a rate
    limit or a timeout): asking again would get the same answer."""
    return (
        isinstance(error, openai.APIStatusError)
        and 400 <= error.status_code < 500
        and (error.status_code not in (408, 409, 429))
    )


@celery_app.task(
    bind=True,
    name=ASSISTANT_TURN_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,  # bounded below by LLM_MAX_RETRIES and DATABASE_RETRIES
    ignore_result=True,
)
def assistant_turn(self: Task, user_message_pk: int) -> int | None:
    """Answer the stored user message `user_message_pk`; return the reply's pk.

    A failed LLM call is retried with exponential backoff as a Celery
    countdown, or after the wait a 429 or 503 asked for in `Retry-After` (the lease is
    extended to cover the wait). A request the provider refuses (400, 401, 404...) is not
    asked again. After the last try the turn ends with an `error` event and a stored
    error. A turn that loses the database is retried the same way, with the same task id
    (it keeps its lease).
    """
    settings = get_settings()
    if not self.request.retries:
        metrics.increment("turns_started")
    turn = AssistantTurn(user_message_pk, self.request.id)
    try:
        reply_pk = turn.run()
    except llm.LLMError as exc:
        retries = self.request.retries
        if retries < settings.llm_max_retries and not _refused(exc):
            countdown = settings.llm_retry_backoff_s * 2**retries
            asked = requested_wait_s(exc)
            if asked is not None:
                # The provider said when it can serve again (429, 503): sooner fails
                # again, later loses time; no wait may outlast the turn's deadline.
                countdown = min(asked, settings.turn_deadline_s)
            log.warning(
                "turn for message %s failed (%s); retry %s in %.1fs",
                user_message_pk,
                exc,
                retries + 1,
                countdown,
            )
            turn.claim(extra_s=countdown)
            raise self.retry(exc=exc, countdown=countdown) from exc
        log.error("turn for message %s failed for good: %s", user_message_pk, exc)
        metrics.increment("turns_failed")
        turn.fail(f"{type(exc).__name__}: {exc}")
    except OperationalError as exc:
        retries = self.request.retries
        if retries >= DATABASE_RETRIES:
            metrics.increment("turns_failed")
            raise
        countdown = DATABASE_RETRY_BACKOFF_S * 2**retries
        log.warning(
            "turn for message %s lost the database (%s); retry %s in %.1fs",
            user_message_pk,
            str(exc).splitlines()[0],
            retries + 1,
            countdown,
        )
        # Same task id: the retry keeps the turn's lease (if it took one) and claims again.
        raise self.retry(exc=exc, countdown=countdown) from exc
    except TurnDeadlineExceeded as exc:
        log.error("turn for message %s: %s", user_message_pk, exc)
        metrics.increment("turns_failed")
        turn.fail(str(exc))
    except Exception:
        metrics.increment("turns_failed")
        raise
    else:
        if reply_pk is not None:
            metrics.increment("turns_finished")
            log.info("turn for message %s answered: reply %s", user_message_pk, reply_pk)
        return reply_pk
    return None
