"""The soak's verdict, read from PostgreSQL once the load stopped and the stack settled.

For the soak's sessions only: every user message the clients got a 200 for has exactly
one stored answer (or a stored error), every stored answer was acknowledged, none is
duplicated, no turn is left holding a lease, no connection sits idle in a transaction,
and every web node's /health says 200.
"""

from __future__ import annotations

from typing import Any

import psycopg2
import requests

ANSWERS_SQL = """
SELECT u.client_message_id,
       count(r.message_pk) AS replies,
       count(r.message_pk) FILTER (WHERE r.in_error_state IS NOT NULL) AS errors,
       count(r.message_pk) FILTER (
           WHERE r.in_error_state IS NULL AND r.acknowledged_at IS NULL) AS unacked,
       bool_or(u.turn_lease_until > now()) AS leased
FROM md_message u
LEFT JOIN md_message r ON r.in_reply_to_pk = u.message_pk
WHERE u.sender = 'user' AND u.session_id = ANY(%(sessions)s)
GROUP BY u.message_pk, u.client_message_id
"""

IDLE_IN_TRANSACTION_SQL = """
SELECT count(*) FROM pg_stat_activity
WHERE state LIKE 'idle in transaction%%' AND pid <> pg_backend_pid()
"""


def database_state(database_url: str, sessions: list[str], accepted: set[str]) -> dict[str, Any]:
    """Counts over the soak's sessions; `accepted`: the message_ids that got a 200."""
    with psycopg2.connect(database_url, connect_timeout=5) as conn, conn.cursor() as cur:
        cur.execute(ANSWERS_SQL, {"sessions": sessions})
        rows = cur.fetchall()
        cur.execute(IDLE_IN_TRANSACTION_SQL)
        idle_in_transaction = cur.fetchone()[0]
    conn.close()
    stored = {row[0]: row for row in rows}
    lost = sorted(tag for tag in accepted if tag not in stored or stored[tag][1] == 0)
    return {
        "user_messages_stored": len(rows),
        "accepted_by_clients": len(accepted),
        "accepted_not_stored": sum(1 for tag in accepted if tag not in stored),
        "answered": sum(1 for row in rows if row[1] - row[2] > 0),
        "errors": sum(1 for row in rows if row[2] > 0),
        "lost": len(lost),
        "lost_examples": lost[:10],
        "duplicated": sum(1 for row in rows if row[1] > 1),
        "unacknowledged": sum(row[3] for row in rows),
        "unanswered_still_leased": sum(1 for row in rows if row[1] == 0 and row[4]),
        "unanswered_not_accepted": sum(1 for row in rows if row[1] == 0 and row[0] not in accepted),
        "idle_in_transaction": idle_in_transaction,
    }


def settled(state: dict[str, Any]) -> bool:
    return (
        state["lost"] == 0
        and state["unacknowledged"] == 0
        and state["unanswered_still_leased"] == 0
        and state["idle_in_transaction"] == 0
    )


def health(nodes: list[str]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for node in nodes:
        try:
            out[node] = requests.get(f"{node}/health", timeout=10).status_code
        except requests.RequestException:
            out[node] = None
    return out
