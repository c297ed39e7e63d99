"""The Socket.IO half: join a session, stream a turn live, acknowledge what arrives."""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import socketio
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

CLIENT_VERSION = "terminal-1"
JOIN_TIMEOUT_S = 10


class TurnError(Exception):
    """The turn failed (an `error` event) or took too long."""


@dataclass
class Draft:
    produced_text_pk: int | None = None
    version_pk: int | None = None
    version_index: int | None = None
    title: str = ""
    text: str = ""
    author: str = "assistant"


@dataclass
class Turn:
    """What one assistant turn streamed, and how it ended."""

    answer: str = ""
    updates: int = 0
    draft: Draft | None = None
    draft_updates: int = 0
    message: dict[str, Any] = field(default_factory=dict)
    acknowledged: bool = False


def draft_panel(draft: Draft, status: str) -> Panel:
    version = f"v{draft.version_index} · " if draft.version_index else ""
    return Panel(
        Text(draft.text or "…"),
        title=f"✎ {version}{draft.title or 'Draft'}",
        title_align="left",
        subtitle=status,
        subtitle_align="right",
        border_style="magenta",
    )


def answer_panel(text: str, status: str) -> Panel:
    return Panel(
        Text(text or "…"),
        title="assistant",
        title_align="left",
        subtitle=status,
        subtitle_align="right",
        border_style="cyan",
    )


class LiveSession:
    """One authenticated socket, joined to one session at a time.

    Handlers run on python-socketio's thread: they acknowledge (by returning
    the ack, as Mojodex clients do) and hand the events to the main thread,
    which renders them.
    """

    def __init__(self, base_url: str, token: str, console: Console):
        self.base_url = base_url
        self.token = token
        self.console = console
        self.session_id: str | None = None
        self.events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.title: str | None = None
        self._seen: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self.sio = socketio.Client(reconnection=True, reconnection_delay_max=5)
        self.sio.on("connect", self._on_connect)
        self.sio.on("mojo_token", self._relay("token"))
        self.sio.on("draft_token", self._relay("draft_token"))
        self.sio.on("error", self._relay("error"))
        self.sio.on("user_task_execution_title", self._on_title)
        self.sio.on("mojo_message", self._on_mojo_message)
        self.sio.on("draft_message", self._on_draft_message)

    # Connection

    def connect(self) -> None:
        self.sio.connect(
            self.base_url,
            auth={"token": self.token},
            transports=["websocket"],
            wait_timeout=JOIN_TIMEOUT_S,
        )

    def close(self) -> None:
        """Disconnect, once every ack is on the wire.

        An ack is queued by python-socketio's reader thread after the handler
        returns, and `disconnect()` may close the socket before its queue is
        written. A round trip (joining the session again) settles it: the reader
        handles packets in order, so by the answer every earlier event's ack was
        queued, and the queue is written in order before the request it carried.
        """
        if not self.sio.connected:
            return
        if self.session_id is not None:
            with contextlib.suppress(Exception):
                self.sio.call(
                    "start_session",
                    {"session_id": self.session_id, "version": CLIENT_VERSION},
                    timeout=JOIN_TIMEOUT_S,
                )
        self.sio.disconnect()

    def join(self, session_id: str) -> None:
        """Join the session's room (the server replays what was not acknowledged)."""
        self.session_id = session_id
        self.title = None
        answer = self.sio.call(
            "start_session",
            {"session_id": session_id, "version": CLIENT_VERSION},
            timeout=JOIN_TIMEOUT_S,
        )
        if not isinstance(answer, dict) or answer.get("error"):
            error = answer.get("error") if isinstance(answer, dict) else answer
            raise TurnError(f"cannot join session {session_id}: {error}")

    def _on_connect(self) -> None:
        # After a reconnection, join again: what was missed is replayed.
        if self.session_id is not None:
            self.sio.emit(
                "start_session", {"session_id": self.session_id, "version": CLIENT_VERSION}
            )

    # Handlers (python-socketio's thread)

    def _mine(self, data: Any) -> bool:
        return isinstance(data, dict) and data.get("session_id") == self.session_id

    def _relay(self, kind: str):
        def handler(data: Any = None) -> None:
            if self._mine(data):
                self.events.put((kind, data))

        return handler

    def _on_title(self, data: Any = None) -> None:
        if self._mine(data):
            self.title = data.get("title")
            self.events.put(("title", data))

    def _first_time(self, kind: str, pk: Any) -> bool:
        with self._lock:
            if (kind, pk) in self._seen:
                return False
            self._seen.add((kind, pk))
            return True

    def _on_mojo_message(self, data: Any = None) -> dict[str, Any] | None:
        if not self._mine(data):
            return None  # another session's: it is replayed when that one is joined
        if self._first_time("message", data.get("message_pk")):
            self.events.put(("message", data))
        return {"session_id": data["session_id"], "message_pk": data.get("message_pk")}

    def _on_draft_message(self, data: Any = None) -> dict[str, Any] | None:
        if not self._mine(data):
            return None
        if self._first_time("draft", data.get("produced_text_version_pk")):
            self.events.put(("draft", data))
        return {
            "session_id": data["session_id"],
            "produced_text_version_pk": data.get("produced_text_version_pk"),
        }

    def mark_seen(self, kind: str, pk: Any) -> None:
        """A message already shown (from the history): a replay of it is acked, not shown."""
        with self._lock:
            self._seen.add((kind, pk))

    # Turns (main thread)

    def drain(self) -> None:
        """Forget events of a finished turn (late tokens, titles already shown)."""
        while True:
            try:
                self.events.get_nowait()
            except queue.Empty:
                return

    def wait_turn(
        self,
        timeout_s: float,
        newest_version: int | None = None,
        on_interrupt: Callable[[], None] | None = None,
    ) -> Turn:
        """Render the turn live until its mojo_message / draft_message (acknowledged by
        the handler) or its error; then print it for good. `newest_version`: the
        index of the draft's newest known version (a new draft is the next one).

        A first Ctrl-C calls `on_interrupt` (the stop) and keeps waiting for the
        stopped answer; a second one leaves (KeyboardInterrupt)."""
        turn = Turn()
        deadline = time.monotonic() + timeout_s
        # Ctrl-C becomes an event of the queue rather than an exception raised wherever
        # the main thread happens to be (inside rich's or the queue's locks).
        previous = None
        interrupts = 0

        def on_sigint(*_: Any) -> None:
            nonlocal interrupts
            interrupts += 1
            if interrupts > 1:
                # Leave at once: queued, it could come after the stopped answer.
                raise KeyboardInterrupt
            self.events.put(("interrupt", {}))

        if on_interrupt is not None and threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            return self._wait_turn(turn, deadline, timeout_s, newest_version, on_interrupt)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def _wait_turn(
        self,
        turn: Turn,
        deadline: float,
        timeout_s: float,
        newest_version: int | None,
        on_interrupt: Callable[[], None] | None,
    ) -> Turn:
        interrupted = False
        with Live(
            self._render(turn, streaming=True),
            console=self.console,
            refresh_per_second=15,
            transient=True,
        ) as live:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TurnError(f"no answer within {timeout_s:.0f}s")
                try:
                    kind, data = self.events.get(timeout=min(remaining, 0.5))
                except queue.Empty:
                    continue
                if kind == "interrupt":
                    if interrupted or on_interrupt is None:
                        raise KeyboardInterrupt
                    interrupted = True
                    on_interrupt()
                    live.update(self._render(turn, streaming=True, note="stopping…"))
                    continue
                if kind == "token":
                    turn.answer = data.get("text", "")
                    turn.updates += 1
                elif kind == "draft_token":
                    turn.draft = turn.draft or Draft()
                    turn.draft.title = data.get("produced_text_title") or turn.draft.title
                    turn.draft.text = data.get("produced_text", "")
                    turn.draft_updates += 1
                elif kind == "error":
                    live.update(Text(""))
                    raise TurnError(data.get("error") or "the assistant could not answer")
                elif kind in ("message", "draft"):
                    self._finish(turn, data, newest_version)
                    break
                live.update(self._render(turn, streaming=True))
        self.console.print(self._render(turn, streaming=False))
        return turn

    @staticmethod
    def _finish(turn: Turn, data: dict[str, Any], newest_version: int | None) -> None:
        turn.message = data
        turn.answer = data.get("text") or ""
        turn.acknowledged = True  # the handler returned the ack with this event
        if data.get("produced_text_version_pk") is not None:
            turn.draft = Draft(
                produced_text_pk=data.get("produced_text_pk"),
                version_pk=data.get("produced_text_version_pk"),
                # draft_message does not carry the index: it follows the newest known.
                version_index=data.get("produced_text_version_index") or (newest_version or 0) + 1,
                title=data.get("produced_text_title") or "",
                text=data.get("produced_text") or "",
            )

    def _render(self, turn: Turn, streaming: bool, note: str = "writing…") -> RenderableType:
        if streaming:
            parts: list[RenderableType] = [answer_panel(turn.answer, note)]
            if turn.draft is not None:
                parts.append(draft_panel(turn.draft, "writing…"))
            return Group(*parts)
        status = "acknowledged ✓" if turn.acknowledged else ""
        if turn.message.get("stopped"):
            status = f"stopped · {status}"
        live_note = f"{turn.updates} live updates · " if turn.updates else ""
        parts = [answer_panel(turn.answer, f"{live_note}{status}")]
        if turn.draft is not None:
            draft_note = f"{turn.draft_updates} live updates · " if turn.draft_updates else ""
            parts.append(draft_panel(turn.draft, f"{draft_note}{status}"))
        return Group(*parts)
