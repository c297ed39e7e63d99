"""Acknowledged delivery: resend until acked, replay on rejoin, acks stored."""

from __future__ import annotations

import time

import psycopg2
import pytest

from tests.support.processes import wait_until

RESEND_INTERVAL_S = 5.0  # the default, which the main test stack uses


def mojo_messages_for(client, message_pk):
    return [m for m in client.events("mojo_message") if m["message_pk"] == message_pk]


def acknowledged_at(database_url, message_pk):
    with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT acknowledged_at FROM md_message WHERE message_pk = %s", (message_pk,)
        )
        return cursor.fetchone()[0]


def test_unacknowledged_message_is_resent_every_interval(api, user, session_id, connect):
    client = connect(user, session_id, ack=False)
    api.send_message(user, session_id, "[llm:reply=Hello.]")
    first = client.wait_for("mojo_message")
    first_at = time.monotonic()

    second = client.wait_for("mojo_message", timeout=RESEND_INTERVAL_S + 5)
    second_at = time.monotonic()
    third = client.wait_for("mojo_message", timeout=RESEND_INTERVAL_S + 5)
    third_at = time.monotonic()

    assert first["message_pk"] == second["message_pk"] == third["message_pk"]
    assert second == first
    assert RESEND_INTERVAL_S - 1 <= second_at - first_at <= RESEND_INTERVAL_S + 3
    assert RESEND_INTERVAL_S - 1 <= third_at - second_at <= RESEND_INTERVAL_S + 3


def test_acknowledged_message_is_never_resent(api, user, session_id, connect, database_url):
    client = connect(user, session_id, ack=True)
    api.send_message(user, session_id, "[llm:reply=Once.]")
    message = client.wait_for("mojo_message")

    with pytest.raises(TimeoutError):
        client.wait_for("mojo_message", timeout=RESEND_INTERVAL_S + 3)

    assert len(mojo_messages_for(client, message["message_pk"])) == 1
    assert acknowledged_at(database_url, message["message_pk"]) is not None


def test_resend_stops_once_the_client_acknowledges(api, user, session_id, connect):
    client = connect(user, session_id, ack=False)
    api.send_message(user, session_id, "[llm:reply=Ack me later.]")
    client.wait_for("mojo_message")
    client.ack = True

    resent = client.wait_for("mojo_message", timeout=RESEND_INTERVAL_S + 5)

    with pytest.raises(TimeoutError):
        client.wait_for("mojo_message", timeout=RESEND_INTERVAL_S + 3)
    assert len(mojo_messages_for(client, resent["message_pk"])) == 2


def test_ack_with_another_message_pk_does_not_count(api, user, session_id, connect, database_url):
    client = connect(user, session_id, ack=False)
    client.ack_override = lambda data: {"session_id": data["session_id"], "message_pk": -1}
    api.send_message(user, session_id, "[llm:reply=Wrong ack.]")
    first = client.wait_for("mojo_message")

    again = client.wait_for("mojo_message", timeout=RESEND_INTERVAL_S + 5)

    assert again["message_pk"] == first["message_pk"]
    assert acknowledged_at(database_url, first["message_pk"]) is None


def test_client_rejoining_gets_its_missed_message_within_a_second(api, user, session_id, connect):
    watcher = connect(user, session_id, ack=False)
    api.send_message(user, session_id, "[llm:reply=You were away.]")
    missed = watcher.wait_for("mojo_message")
    watcher.close()

    started = time.monotonic()
    returning = connect(user, session_id)
    replayed = returning.wait_for("mojo_message", timeout=5)

    assert replayed["message_pk"] == missed["message_pk"]
    assert replayed["text"] == "You were away."
    assert time.monotonic() - started < 1.0


def test_rejoining_replays_nothing_once_acknowledged(api, user, session_id, connect, database_url):
    first = connect(user, session_id, ack=True)
    api.send_message(user, session_id, "[llm:reply=Seen.]")
    seen = first.wait_for("mojo_message")
    wait_until(lambda: acknowledged_at(database_url, seen["message_pk"]) is not None, 5, "ack")
    first.close()

    returning = connect(user, session_id)

    with pytest.raises(TimeoutError):
        returning.wait_for("mojo_message", timeout=2)
