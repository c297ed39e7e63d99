"""Resend load: thousands of finished messages that nobody acknowledges.

The messages are inserted straight into md_message (assistant messages of sessions that
no client has joined) as if each were delivered once during the next RESEND_INTERVAL_S,
evenly spread (`count / RESEND_INTERVAL_S` first deliveries a second, as turns would store
them): from then on the stack's resend sweep (worker/delivery_sweep.py) must resend as many a
second, every second. (Dated in the past instead, the first resends would be due before
the sweep, which plans its next run from the deliveries it knows of, could know of them.)
The database is polled: each time a message's `delivery_attempts` goes up, its
`last_delivery_at` minus the previous one minus RESEND_INTERVAL_S is how late that resend
ran. Meanwhile the delivery worker's memory is sampled, and Redis's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg2
import psycopg2.extras
import redis

from bench.stats import summary_ms


def insert_unacknowledged(
    database_url: str, session_ids: list[str], count: int, interval_s: float
) -> list[int]:
    """Insert `count` unacknowledged assistant messages spread over the sessions, their
    first deliveries spread evenly over the next `interval_s`."""
    rows = [
        (
            session_ids[i % len(session_ids)],
            psycopg2.extras.Json({"text": f"resend load message {i}", "text_with_tags": ""}),
            interval_s * i / count,
        )
        for i in range(count)
    ]
    connection = psycopg2.connect(database_url)
    try:
        with connection, connection.cursor() as cursor:
            pks = psycopg2.extras.execute_values(
                cursor,
                "INSERT INTO md_message (session_id, sender, event_name, message, message_date,"
                " creation_date, delivery_attempts, last_delivery_at) VALUES %s"
                " RETURNING message_pk",
                rows,
                template="(%s, 'mojo', 'mojo_message', %s, now(), now(), 1,"
                " now() + make_interval(secs => %s))",
                page_size=1000,
                fetch=True,
            )
    finally:
        connection.close()
    return [pk for (pk,) in pks]


def acknowledge_all(database_url: str, pks: list[int]) -> None:
    """Stop the resends: the sweep no longer finds these messages due."""
    connection = psycopg2.connect(database_url)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(
                "UPDATE md_message SET acknowledged_at = now() WHERE message_pk = ANY(%s)",
                (pks,),
            )
    finally:
        connection.close()


def ensure_sweep() -> bool:
    """Start the stack's resend sweep now if none runs (first deliveries start it too)."""
    from worker.delivery_sweep import ensure_resend_sweep  # the stack's Redis, from env

    return ensure_resend_sweep()


def redis_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def measure(
    database_url: str,
    redis_url: str,
    pks: list[int],
    interval_s: float,
    resends_per_message: int,
    timeout_s: float,
    on_poll: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Poll delivery state until every message had `resends_per_message` resends observed
    (or `timeout_s`); lateness of each observed resend and Redis's peak memory."""
    connection = psycopg2.connect(database_url)
    connection.autocommit = True
    redis_client = redis.Redis.from_url(redis_url)
    seen: dict[int, tuple[int, float]] = {}
    # Resends watched happening, per message: a message already resent when first seen
    # (a late first poll on a busy machine) does not count as measured.
    watched: dict[int, int] = dict.fromkeys(pks, 0)
    lateness: list[float] = []
    redis_before = redis_memory(redis_client)
    redis_peak = redis_before
    started = time.time()
    deadline = time.monotonic() + timeout_s
    low, high = min(pks), max(pks)
    done = False
    try:
        while time.monotonic() < deadline and not done:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT message_pk, delivery_attempts, extract(epoch FROM last_delivery_at)"
                    " FROM md_message WHERE message_pk BETWEEN %s AND %s",
                    (low, high),
                )
                rows = cursor.fetchall()
            for pk, attempts, at in rows:
                if at is None:
                    continue
                at = float(at)
                previous = seen.get(pk)
                if previous is not None and attempts > previous[0]:
                    watched[pk] += attempts - previous[0]
                    if attempts == previous[0] + 1:
                        lateness.append(at - previous[1] - interval_s)
                if previous is None or attempts != previous[0]:
                    seen[pk] = (attempts, at)
            redis_peak = max(redis_peak, redis_memory(redis_client))
            if on_poll is not None:
                on_poll()
            done = all(count >= resends_per_message for count in watched.values())
            time.sleep(0.25)
    finally:
        connection.close()
    resends = len(lateness)
    duration = time.time() - started
    return {
        "messages": len(pks),
        "resend_interval_s": interval_s,
        "observed_s": round(duration, 1),
        "complete": done,
        "resends_observed": resends,
        "resends_per_s": round(resends / duration, 1) if duration > 0 else None,
        "lateness_ms": summary_ms(lateness),
        "redis_used_memory_mb": {
            "before": round(redis_before / 2**20, 1),
            "peak": round(redis_peak / 2**20, 1),
        },
    }
