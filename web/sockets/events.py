"""The Socket.IO events of the protocol and their payloads, for the docs.

The OpenAPI document carries them under `x-socketio` (payload schemas in
components/schemas) and summarises them in its description; docs/socketio.md
explains them for humans. tests/integration/test_openapi.py checks that the
three agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Payload(BaseModel):
    model_config = ConfigDict(extra="allow")


class StartSessionRequest(_Payload):
    session_id: str = Field(description="A session of the connected user.")
    version: str | None = Field(default=None, description="The client's version (ignored).")


class StartSessionAck(_Payload):
    session_id: str
    joined: Literal[True]


class SocketError(_Payload):
    error: str


class UserMessageReception(_Payload):
    success: bool
    session_id: str


class UserTaskExecutionStart(_Payload):
    start_date: str = Field(description="ISO 8601 with a UTC offset.")
    user_task_execution_pk: int
    session_id: str


class MojoToken(_Payload):
    text: str = Field(description="The whole answer so far (not a delta).")
    session_id: str


class DraftToken(_Payload):
    produced_text_title: str
    produced_text: str
    text: str
    session_id: str


class MessageUsage(_Payload):
    """What an assistant message cost."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    estimated: bool = Field(description="True when the LLM reported no usage (estimates).")


class MojoMessage(_Payload):
    message_pk: int
    text: str
    text_with_tags: str
    session_id: str
    user_task_execution_pk: int | None
    audio: bool
    usage: MessageUsage | None = Field(default=None, description="What the answer cost.")
    stopped: Literal[True] | None = Field(
        default=None, description="Present (true) only when the user stopped the turn."
    )
    truncated: Literal[True] | None = Field(
        default=None, description="Present (true) only when the model hit its answer limit."
    )
    filtered: Literal[True] | None = Field(
        default=None, description="Present (true) only when the provider's filter cut it."
    )


class MojoMessageAck(_Payload):
    session_id: str
    message_pk: int


class DraftMessage(MojoMessage):
    produced_text: str
    produced_text_title: str
    produced_text_pk: int
    produced_text_version_pk: int
    text_type: str | None


class DraftMessageAck(_Payload):
    session_id: str
    produced_text_version_pk: int


class UserTaskExecutionTitle(_Payload):
    title: str
    session_id: str


class TurnError(_Payload):
    error: str
    session_id: str
    user_message_pk: int | None = None
    user_task_execution_pk: int | None = None


@dataclass(frozen=True)
class SocketEvent:
    name: str
    direction: Literal["client_to_server", "server_to_client"]
    payload: type[BaseModel]
    when: str
    # What the other side answers through the Socket.IO ack.
    ack: tuple[type[BaseModel], ...] = ()


SOCKET_EVENTS: tuple[SocketEvent, ...] = (
    SocketEvent(
        "start_session",
        "client_to_server",
        StartSessionRequest,
        "Join the session's room (owner only); unacknowledged answers are sent again at once.",
        (StartSessionAck, SocketError),
    ),
    SocketEvent(
        "user_message_reception",
        "server_to_client",
        UserMessageReception,
        "A user message was stored.",
    ),
    SocketEvent(
        "user_task_execution_start",
        "server_to_client",
        UserTaskExecutionStart,
        "The first turn of a task execution started.",
    ),
    SocketEvent(
        "mojo_token",
        "server_to_client",
        MojoToken,
        "While the assistant answers (coalesced, at most one per TOKEN_EMIT_INTERVAL_MS).",
    ),
    SocketEvent(
        "draft_token",
        "server_to_client",
        DraftToken,
        "While the assistant writes a task's result (the draft).",
    ),
    SocketEvent(
        "mojo_message",
        "server_to_client",
        MojoMessage,
        "The finished answer; resent until the client's ack carries its message_pk.",
        (MojoMessageAck,),
    ),
    SocketEvent(
        "draft_message",
        "server_to_client",
        DraftMessage,
        "A finished draft; resent until the ack carries its produced_text_version_pk.",
        (DraftMessageAck,),
    ),
    SocketEvent(
        "user_task_execution_title",
        "server_to_client",
        UserTaskExecutionTitle,
        "A task execution got its title.",
    ),
    SocketEvent(
        "error",
        "server_to_client",
        TurnError,
        "The turn failed; a message in error state is stored too.",
    ),
)

CONNECTION = (
    "Connect to the web node's Socket.IO endpoint (`/socket.io/`) with "
    '`auth={"token": <jwt>}`; a connection without a valid token is refused. '
    "Server events go to the session's room: join it with `start_session`."
)


def socketio_extension(ref: Callable[[type[BaseModel], Any], Any]) -> dict[str, Any]:
    """The `x-socketio` extension: every event with its payload (and ack) schema."""
    events: dict[str, dict[str, Any]] = {"client_to_server": {}, "server_to_client": {}}
    for event in SOCKET_EVENTS:
        entry: dict[str, Any] = {
            "description": event.when,
            "payload": ref(event.payload, "serialization"),
        }
        if event.ack:
            schemas = [ref(model, "serialization") for model in event.ack]
            entry["ack"] = schemas[0] if len(schemas) == 1 else {"oneOf": schemas}
        events[event.direction][event.name] = entry
    return {"path": "/socket.io/", "connection": CONNECTION, "events": events}


def socketio_description() -> str:
    """A markdown summary of the events, for the document's description."""
    lines = [
        "## Socket.IO events",
        "",
        CONNECTION + " Payload schemas are under `x-socketio` (see also docs/socketio.md).",
        "",
        "| direction | event | payload | when |",
        "|---|---|---|---|",
    ]
    for event in SOCKET_EVENTS:
        fields = ", ".join(event.payload.model_fields)
        arrow = "client → server" if event.direction == "client_to_server" else "server → client"
        lines.append(f"| {arrow} | `{event.name}` | {{{fields}}} | {event.when} |")
    return "\n".join(lines) + "\n"
