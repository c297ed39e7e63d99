"""What a delivery says on the wire: the `mojo_message` / `draft_message` payload of a
stored assistant message, and which client ack acknowledges it (Mojodex clients)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

# The field of the client's ack that must match, per event (Mojodex clients).
ACK_KEYS = {"mojo_message": "message_pk", "draft_message": "produced_text_version_pk"}


class StoredMessage(Protocol):
    """What a delivery needs of a stored message: a Message, or a row of its columns."""

    message_pk: int
    session_id: str
    event_name: str
    message: dict[str, Any]


def delivery_event(message: StoredMessage) -> tuple[str, dict[str, Any]]:
    """The Socket.IO event and payload that deliver a stored assistant message."""
    body = message.message
    payload: dict[str, Any] = {
        "message_pk": message.message_pk,
        "text": body.get("text", ""),
        "text_with_tags": body.get("text_with_tags", body.get("text", "")),
        "session_id": message.session_id,
        "user_task_execution_pk": body.get("user_task_execution_pk"),
        "audio": False,
    }
    if "usage" in body:
        payload["usage"] = body["usage"]
    for flag in ("stopped", "truncated", "filtered"):
        if body.get(flag):
            payload[flag] = True
    if message.event_name == "draft_message":
        for key in (
            "produced_text",
            "produced_text_title",
            "produced_text_pk",
            "produced_text_version_pk",
            "produced_text_version_index",
            "text_type",
        ):
            payload[key] = body.get(key)
    return message.event_name, payload


def ack_matches(event: str, payload: dict[str, Any], ack: Any) -> bool:
    """Whether a client's ack acknowledges this message.

    python-socketio clients answer every ack request, even with nothing (the
    Mojodex CLI returns None for other sessions' events): only an ack carrying
    the matching id counts.
    """
    if not isinstance(ack, dict):
        return False
    key = ACK_KEYS.get(event, "message_pk")
    expected = payload.get(key)
    received = ack.get(key)
    if expected is None or received is None:
        return False
    return str(received) == str(expected)


@dataclass
class StoredReply:
    """A stored assistant message as a delivery needs it, built without a database read."""

    message_pk: int
    session_id: str
    event_name: str
    message: dict[str, Any]
