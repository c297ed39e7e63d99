"""Statements on md_turn_usage: what LLM calls cost, recorded by turns and titles, summed
per user and UTC day for GET /usage and the daily token limit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Date, Row, cast, func, insert, literal, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.sql.expression import CTE

from common.models import ChatSession, TurnUsage

_usage = TurnUsage.__table__
_sessions = ChatSession.__table__


def usage_columns(usage: Any, **timing: Any) -> dict[str, Any]:
    """The columns of a usage row from a `common.llm.Usage` and the call's timings
    (time_to_first_token_ms, duration_ms, stopped)."""
    return {
        "model": usage.model,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "estimated": usage.estimated,
        **timing,
    }


def insert_turn_usage_from(
    stored: CTE, session_id: str, columns: dict[str, Any], now: datetime
) -> CTE:
    """A CTE recording a turn's usage for the reply that `stored` (a CTE of the inserted
    message_pk) inserted, for the session's user: nothing if no reply was inserted."""
    values = {"kind": "turn", "created_at": now, "stopped": False, **columns}
    names = list(values)
    chosen = select(
        _sessions.c.user_id,
        stored.c.message_pk,
        *(literal(values[name], type_=_usage.c[name].type) for name in names),
    ).where(_sessions.c.session_id == session_id)
    return (
        insert(_usage)
        .from_select(["user_id", "message_pk", *names], chosen)
        .returning(_usage.c.usage_pk)
        .cte("usage_recorded")
    )


def record_background_usage(
    db: DbSession | Connection, user_id: str, kind: str, columns: dict[str, Any], now: datetime
) -> None:
    """Record what a background request ("title", "todos") cost the user (the caller
    commits)."""
    values = {"stopped": False, **columns}
    db.execute(insert(_usage).values(user_id=user_id, kind=kind, created_at=now, **values))


def tokens_since(db: DbSession | Connection, user_id: str, since: datetime) -> int:
    """Prompt and completion tokens the user's LLM calls cost since `since`."""
    total = db.execute(
        select(
            func.coalesce(func.sum(_usage.c.prompt_tokens + _usage.c.completion_tokens), 0)
        ).where(_usage.c.user_id == user_id, _usage.c.created_at >= since)
    ).scalar()
    return int(total or 0)


def daily_totals(
    db: DbSession | Connection, user_id: str | None, start: datetime, end: datetime
) -> list[Row]:
    """(day, turns, prompt_tokens, completion_tokens) per UTC day in [start, end), for one
    user or (user_id None) everyone, oldest day first; days without usage are absent."""
    day = cast(func.timezone("UTC", _usage.c.created_at), Date).label("day")
    query = (
        select(
            day,
            func.count().filter(_usage.c.kind == "turn").label("turns"),
            func.sum(_usage.c.prompt_tokens).label("prompt_tokens"),
            func.sum(_usage.c.completion_tokens).label("completion_tokens"),
        )
        .where(_usage.c.created_at >= start, _usage.c.created_at < end)
        .group_by(day)
        .order_by(day)
    )
    if user_id is not None:
        query = query.where(_usage.c.user_id == user_id)
    return list(db.execute(query).all())
