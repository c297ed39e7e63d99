"""What a user's LLM calls cost: the daily report (GET /usage) and the daily token limit."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from common.errors import NotFound, TooManyRequests, Unprocessable
from common.models import User
from common.queries import usage as usage_queries
from common.settings import get_settings
from web.extensions import db

# The longest period one report covers.
MAX_REPORT_DAYS = 366
# The period of a report that names no dates: the last 30 days, today included.
DEFAULT_REPORT_DAYS = 30


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def check_daily_token_limit(user_id: str) -> None:
    """TooManyRequests (429) if the user spent USER_DAILY_TOKEN_LIMIT tokens or more
    today (UTC): called before anything of a new turn is stored or queued."""
    limit = get_settings().user_daily_token_limit
    if not limit:
        return
    now = datetime.now(UTC)
    today = _midnight(now.date())
    used = usage_queries.tokens_since(db.session, user_id, today)
    if used < limit:
        return
    resets_at = today + timedelta(days=1)
    retry_after = max(1, int((resets_at - now).total_seconds()) + 1)
    raise TooManyRequests(
        f"Daily token limit reached: {used} of {limit} tokens used today; "
        f"it resets at {resets_at.isoformat()} (midnight UTC).",
        extra={"limit": limit, "resets_at": resets_at.isoformat()},
        headers={"Retry-After": str(retry_after)},
    )


def usage_report(user_id: str | None, start: date | None, end: date | None) -> dict[str, Any]:
    """Turns and tokens per UTC day from `start` to `end` (both included) of one user, or
    of everyone (user_id None), with the totals. Defaults: the last 30 days."""
    end = end or datetime.now(UTC).date()
    start = start or end - timedelta(days=DEFAULT_REPORT_DAYS - 1)
    if start > end:
        raise Unprocessable("Invalid field 'from': must be on or before 'to'.")
    if (end - start).days + 1 > MAX_REPORT_DAYS:
        raise Unprocessable(f"Invalid field 'to': a report covers at most {MAX_REPORT_DAYS} days.")
    rows = usage_queries.daily_totals(
        db.session, user_id, _midnight(start), _midnight(end + timedelta(days=1))
    )
    days = [
        {
            "date": row.day.isoformat(),
            "turns": int(row.turns),
            "prompt_tokens": int(row.prompt_tokens),
            "completion_tokens": int(row.completion_tokens),
        }
        for row in rows
    ]
    total = {
        name: sum(day[name] for day in days)
        for name in ("turns", "prompt_tokens", "completion_tokens")
    }
    return {"from": start.isoformat(), "to": end.isoformat(), "days": days, "total": total}


def check_user_exists(user_id: str) -> None:
    """NotFound for an unknown user_id (the backoffice's report of one user)."""
    if db.session.scalar(select(User.user_id).where(User.user_id == user_id)) is None:
        raise NotFound(f"Unknown user_id '{user_id}'.")
