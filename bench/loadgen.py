"""The load generator: many concurrent Socket.IO sessions in one asyncio process.

Each simulated user (a `TurnClient`) connects a python-socketio `AsyncClient`, joins its
session, then sends messages one after another: it sends, waits for the finished message
(acknowledging it as a Mojodex client does), and sends the next. It records, per turn, when
the request went out, when the HTTP answer came back, when the first and last `mojo_token`
and the `mojo_message` arrived (wall clock, `time.time()`, so that the scripted LLM's own
timestamps of the same stream can be joined in), and whether the text was the one the LLM
was told to say.

The LLM is told what to say with directives in the user message (`[llm:reply=...]`,
`[llm:ttft_ms=...]`, `[llm:token_interval_ms=...]`): every answer starts with a tag unique to
its turn, so each token and message is matched to its turn, and to the LLM's record of the
stream, whatever order events arrive in.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import socketio

WORDS = (
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
)


@dataclass(frozen=True)
class Workload:
    """What the scripted LLM does for every turn, and how long clients keep sending."""

    ttft_ms: int
    token_interval_ms: int
    reply_words: int
    duration_s: float
    think_ms: int = 0
    turn_timeout_s: float = 60.0

    def reply(self, tag: str) -> str:
        """The answer of a turn: its tag, then filler words (one model token each)."""
        filler = [WORDS[i % len(WORDS)] for i in range(max(0, self.reply_words - 1))]
        return " ".join([tag, *filler])

    def prompt(self, tag: str) -> str:
        """The user message that makes the scripted LLM give `reply(tag)` at this pace."""
        return (
            f"Question {tag}, please answer. [llm:ttft_ms={self.ttft_ms}]"
            f" [llm:token_interval_ms={self.token_interval_ms}] [llm:reply={self.reply(tag)}]"
        )

    @property
    def turn_s(self) -> float:
        """How long the LLM alone takes to stream one answer."""
        return (self.ttft_ms + self.token_interval_ms * max(0, self.reply_words - 1)) / 1000

    def as_dict(self) -> dict[str, Any]:
        return {
            "ttft_ms": self.ttft_ms,
            "token_interval_ms": self.token_interval_ms,
            "reply_words": self.reply_words,
            "duration_s": self.duration_s,
            "think_ms": self.think_ms,
        }


@dataclass
class Turn:
    """One user message and the answer it got, as the client saw it."""

    client: int
    index: int
    tag: str
    tokens: int
    sent_at: float = 0.0
    put_done_at: float | None = None
    put_status: int | None = None
    first_token_at: float | None = None
    last_token_at: float | None = None
    message_at: float | None = None
    message_pk: Any = None
    token_events: int = 0
    text_ok: bool | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)


def tag_of(text: Any) -> str:
    return text.split(" ", 1)[0] if isinstance(text, str) else ""


class TurnClient:
    """One simulated user of a pipeline; subclasses say how to join and how to send."""

    ack = True

    def __init__(self, index: int, base_url: str, http: aiohttp.ClientSession, run_tag: str):
        self.index = index
        self.base_url = base_url
        self.http = http
        self.run_tag = run_tag
        self.sio = socketio.AsyncClient(reconnection=False, http_session=http, handle_sigint=False)
        self.sio.on("*", self._on_event)
        self.turns: list[Turn] = []
        self._by_tag: dict[str, Turn] = {}
        self._replies: dict[str, str] = {}
        self.seen_pks: set[Any] = set()
        self.duplicates = 0
        self.unmatched = 0
        self.event_times: list[float] = []
        self.errors: list[str] = []

    # -- what subclasses provide -------------------------------------------------------------

    async def setup(self) -> None:
        raise NotImplementedError

    async def send(self, turn: Turn, text: str) -> int:
        raise NotImplementedError

    # -- events --------------------------------------------------------------------------------

    async def _on_event(self, event: str, data: Any = None) -> Any:
        now = time.time()
        self.event_times.append(now)
        if not isinstance(data, dict):
            return None
        if event == "mojo_token":
            turn = self._by_tag.get(tag_of(data.get("text")))
            if turn is None:
                self.unmatched += 1
                return None
            if turn.first_token_at is None:
                turn.first_token_at = now
            turn.last_token_at = now
            turn.token_events += 1
            return None
        if event == "mojo_message":
            pk = data.get("message_pk")
            if pk in self.seen_pks:
                self.duplicates += 1
            else:
                self.seen_pks.add(pk)
                turn = self._by_tag.get(tag_of(data.get("text")))
                if turn is None:
                    self.unmatched += 1
                elif turn.message_at is None:
                    turn.message_at = now
                    turn.message_pk = pk
                    turn.text_ok = data.get("text") == self._replies.get(turn.tag)
                    turn.done.set()
            if self.ack:
                return {"session_id": data.get("session_id"), "message_pk": pk}
        return None

    # -- the turn loop ---------------------------------------------------------------------

    async def run_turns(self, workload: Workload, start_at: float, end_at: float) -> None:
        """Send turns one after another from `start_at` until `end_at` (wall clock)."""
        await asyncio.sleep(max(0.0, start_at - time.time()))
        index = 0
        while time.time() < end_at:
            tag = f"{self.run_tag}c{self.index}t{index}"
            turn = Turn(self.index, index, tag, tokens=workload.reply_words)
            self._by_tag[tag] = turn
            self._replies[tag] = workload.reply(tag)
            self.turns.append(turn)
            index += 1
            turn.sent_at = time.time()
            try:
                turn.put_status = await self.send(turn, workload.prompt(tag))
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.errors.append(f"send: {type(exc).__name__}: {exc}")
                turn.put_status = -1
            turn.put_done_at = time.time()
            if turn.put_status != 200:
                await asyncio.sleep(0.1)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(turn.done.wait(), workload.turn_timeout_s)
            if workload.think_ms:
                await asyncio.sleep(workload.think_ms / 1000)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.sio.disconnect()


class BackendClient(TurnClient):
    """A System1 user: its own session, joined over Socket.IO; PUT /user_message."""

    def __init__(
        self, index: int, base_url: str, http: aiohttp.ClientSession, run_tag: str, token: str
    ):
        super().__init__(index, base_url, http, run_tag)
        self.token = token
        self.session_id = ""

    async def setup(self) -> None:
        async with self.http.put(
            f"{self.base_url}/session",
            json={"platform": "bench"},
            headers={"Authorization": self.token},
        ) as response:
            body = await response.json()
            if response.status != 200:
                raise RuntimeError(f"PUT /session: {response.status} {body}")
            self.session_id = body["session_id"]
        await self.sio.connect(
            self.base_url, auth={"token": self.token}, transports=["websocket"], wait_timeout=30
        )
        answer = await self.sio.call(
            "start_session", {"session_id": self.session_id, "version": "bench"}, timeout=30
        )
        if not (isinstance(answer, dict) and answer.get("joined")):
            raise RuntimeError(f"start_session: {answer}")

    async def send(self, turn: Turn, text: str) -> int:
        async with self.http.put(
            f"{self.base_url}/user_message",
            json={"session_id": self.session_id, "message_id": turn.tag, "text": text},
            headers={"Authorization": self.token},
        ) as response:
            await response.read()
            if response.status != 200:
                self.errors.append(f"PUT /user_message: {response.status}")
            return response.status


async def register_users(
    http: aiohttp.ClientSession, base_url: str, count: int, run_tag: str, parallel: int = 4
) -> list[str]:
    """Register `count` users (PUT /user) and return their tokens."""

    async def register(i: int) -> str:
        email = f"bench-{run_tag}-{i}@example.com"
        async with http.put(
            f"{base_url}/user",
            json={"email": email, "password": "bench password 123", "name": f"Bench {i}"},
        ) as response:
            body = await response.json()
            if response.status != 200:
                raise RuntimeError(f"PUT /user: {response.status} {body}")
            return str(body["token"])

    return await gather_limited((register(i) for i in range(count)), parallel)


async def gather_limited(awaitables: Iterable[Awaitable[Any]], limit: int) -> list[Any]:
    """Await all, at most `limit` at a time, results in order."""
    semaphore = asyncio.Semaphore(limit)

    async def one(awaitable: Awaitable[Any]) -> Any:
        async with semaphore:
            return await awaitable

    return await asyncio.gather(*(one(a) for a in awaitables))


class LoopLag:
    """How late the event loop wakes up: a client that cannot keep up shows it here."""

    def __init__(self, period_s: float = 0.02):
        self.period_s = period_s
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.period_s)
            self.samples.append(max(0.0, time.perf_counter() - before - self.period_s))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def run_clients(
    clients: list[TurnClient],
    workload: Workload,
    on_window_start: Callable[[], Any],
    on_window_end: Callable[[], Any],
) -> tuple[float, float]:
    """Run every client's turns for `workload.duration_s`; the first turns are spread over
    one turn's time so that the clients do not move in lockstep. Returns (start, end)."""
    start = time.time() + 0.2
    end = start + workload.duration_s
    spread = min(max(workload.turn_s + workload.think_ms / 1000, 0.05), 2.0)
    rng = random.Random(len(clients))

    async def window_edges() -> None:
        await asyncio.sleep(max(0.0, start - time.time()))
        await asyncio.to_thread(on_window_start)
        await asyncio.sleep(max(0.0, end - time.time()))
        await asyncio.to_thread(on_window_end)

    edges = asyncio.get_running_loop().create_task(window_edges())
    await asyncio.gather(
        *(c.run_turns(workload, start + rng.uniform(0, spread), end) for c in clients)
    )
    await edges
    return start, end


async def create_sessions(
    http: aiohttp.ClientSession, base_url: str, tokens: list[str], count: int
) -> list[tuple[str, str]]:
    """`count` sessions spread over the users: (token, session_id) pairs."""

    async def create(i: int) -> tuple[str, str]:
        token = tokens[i % len(tokens)]
        async with http.put(
            f"{base_url}/session", json={"platform": "bench"}, headers={"Authorization": token}
        ) as response:
            body = await response.json()
            if response.status != 200:
                raise RuntimeError(f"PUT /session: {response.status} {body}")
            return token, str(body["session_id"])

    return await gather_limited((create(i) for i in range(count)), 20)


async def idle_sockets(
    http: aiohttp.ClientSession,
    base_url: str,
    sessions: list[tuple[str, str]],
    count: int,
    hold_s: float,
    web_memory_mb: Callable[[], dict[str, float]],
) -> dict[str, Any]:
    """Connect `count` authenticated sockets, each joined to a session, and hold them idle.

    The web node's memory is read before, once connected and after the hold: the RSS of
    its gunicorn master and of its worker (which holds the sockets), and the node's PSS
    (both processes, the pages they share counted once)."""
    before = await asyncio.to_thread(web_memory_mb)
    clients: list[socketio.AsyncClient] = []
    failures: list[str] = []

    async def connect(i: int) -> None:
        token, session_id = sessions[i % len(sessions)]
        client = socketio.AsyncClient(reconnection=False, http_session=http, handle_sigint=False)
        try:
            await client.connect(
                base_url, auth={"token": token}, transports=["websocket"], wait_timeout=30
            )
            answer = await client.call(
                "start_session", {"session_id": session_id, "version": "bench"}, timeout=30
            )
            if not (isinstance(answer, dict) and answer.get("joined")):
                raise RuntimeError(f"start_session: {answer}")
            clients.append(client)
        except Exception as exc:  # counted and reported, the run goes on
            failures.append(f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(Exception):
                await client.disconnect()

    started = time.monotonic()
    await gather_limited((connect(i) for i in range(count)), 50)
    connect_s = time.monotonic() - started
    connected = await asyncio.to_thread(web_memory_mb)
    await asyncio.sleep(hold_s)
    held = await asyncio.to_thread(web_memory_mb)
    still = sum(1 for c in clients if c.connected)
    await gather_limited((c.disconnect() for c in clients), 100)
    return {
        "sockets": count,
        "connected": len(clients),
        "still_connected_after_hold": still,
        "failures": len(failures),
        "failure_examples": failures[:3],
        "connect_s": round(connect_s, 2),
        "hold_s": hold_s,
        "web_memory_mb": {"before": before, "connected": connected, "after_hold": held},
        "web_pss_mb": {
            "before": before["pss_total"],
            "connected": connected["pss_total"],
            "after_hold": held["pss_total"],
        },
        "web_kb_per_socket": round(
            1024 * (held["pss_total"] - before["pss_total"]) / max(1, len(clients)), 1
        ),
    }
