"""Recovery of lost work, run periodically by Celery beat: turns whose worker died or
whose queued task a Redis restart dropped, first deliveries that never happened, and a
resend sweep chain lost with its worker."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from common.celery.app import celery_app
from common.celery.task_names import ASSISTANT_TURN_TASK, RECOVER_TASK
from common.db import with_db_session
from common.queries import messages as message_queries
from common.settings import get_settings
from worker.delivery_sweep import ensure_resend_sweep, next_resend_wait, start_delivery

log = logging.getLogger(__name__)

# At most this many turns and first deliveries are restarted per recovery sweep.
RECOVERY_BATCH = 500


@celery_app.task(name=RECOVER_TASK, ignore_result=True)
def recover_lost_work() -> dict[str, int]:
    """Restart turns whose lease ran out, first deliveries that never happened, and the
    resend sweep if no chain holds its lease.

    Run periodically by Celery beat. Lost work comes from a worker killed mid-turn or
    holding the sweep's countdown task, or a Redis restart that dropped queued tasks.
    """
    settings = get_settings()
    now = datetime.now(UTC)
    window_start = now - timedelta(seconds=settings.recovery_window_s)
    stale_before = now - timedelta(seconds=3 * settings.resend_interval_s)
    with with_db_session() as db:
        undelivered = message_queries.never_delivered(
            db, window_start, stale_before, RECOVERY_BATCH
        )
        turns = message_queries.unanswered_turns(db, window_start, now, RECOVERY_BATCH)
    for message_pk in undelivered:
        start_delivery(message_pk)
    for message_pk in turns:
        celery_app.send_task(ASSISTANT_TURN_TASK, args=[message_pk])
    sweep_started = next_resend_wait() is not None and ensure_resend_sweep()
    if undelivered or turns or sweep_started:
        log.warning(
            "recovered %s first deliveries and %s turn(s); resend sweep %s",
            len(undelivered),
            len(turns),
            "started" if sweep_started else "running",
        )
    return {
        "first_deliveries": len(undelivered),
        "turns": len(turns),
        "resend_sweep_started": int(sweep_started),
    }
