"""A session longer than the rows the turn's claim reads (HISTORY_LIMIT): when the
model's window holds more, the turn reads older messages too, page by page."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

import psycopg2
import requests

from common.queries.messages import HISTORY_LIMIT

EXCHANGES = 75  # 150 stored messages, three times the claim's rows


def store_old_exchanges(database_url: str, session_id: str, count: int) -> None:
    """`count` answered exchanges, dated a day ago: long past, nothing to recover or resend."""
    start = datetime.now(UTC) - timedelta(days=1)
    with psycopg2.connect(database_url) as connection, connection.cursor() as cur:
        for n in range(count):
            at = start + timedelta(seconds=2 * n)
            cur.execute(
                "INSERT INTO md_message (session_id, sender, event_name, message, message_date,"
                " creation_date) VALUES (%s, 'user', 'user_message', %s, %s, %s)"
                " RETURNING message_pk",
                (session_id, json.dumps({"text": f"old question {n}"}), at, at),
            )
            (asked_pk,) = cur.fetchone()
            answered_at = at + timedelta(seconds=1)
            cur.execute(
                "INSERT INTO md_message (session_id, sender, event_name, message, message_date,"
                " creation_date, in_reply_to_pk, acknowledged_at, delivery_attempts)"
                " VALUES (%s, 'mojo', 'mojo_message', %s, %s, %s, %s, %s, 1)",
                (
                    session_id,
                    json.dumps({"text": f"old answer {n}"}),
                    answered_at,
                    answered_at,
                    asked_pk,
                    answered_at,
                ),
            )
    connection.close()


def test_a_long_session_sends_the_model_all_the_history_its_window_holds(
    api, user, session_id, connect, stack, llm_url
):
    store_old_exchanges(stack.env["DATABASE_URL"], session_id, EXCHANGES)
    client = connect(user, session_id)
    marker = secrets.token_hex(4)

    api.send_message(user, session_id, f"Remember {marker}")
    client.wait_for("mojo_message")

    streams = requests.get(llm_url.removesuffix("/v1") + "/_streams", timeout=5).json()
    [sent] = [s for s in streams["streams"] if marker in s["head"]]
    # The system prompt, every stored message, and the new one.
    assert sent["messages"] == 1 + 2 * EXCHANGES + 1 > HISTORY_LIMIT + 1
