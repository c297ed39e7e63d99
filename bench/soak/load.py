"""The soak's load: N conversations streaming turns, as Mojodex clients would.

Each client has its own user and session, a python-socketio `AsyncClient` joined to the
session on one of the web nodes, and sends turns one after another over REST: it waits for
the answer (`mojo_message`, acknowledged as Mojodex clients do by returning
`{session_id, message_pk}`) or the turn's `error`, thinks, and sends the next.

What production clients do when things fail, the clients do too, bounded in count and
time: a PUT that fails (503, or a connection cut by a killed web node) is sent again with
the same `message_id` (the server stores it once); a socket that drops reconnects to the
other web node and joins the session again (which replays what was not acknowledged). A
share of the clients also leave on their own at random (a closed laptop) and rejoin later.

Everything is recorded with wall-clock times for the report: every PUT attempt's status,
every answer's first arrival, every copy of an answer received again (a resend or a
replay), every error.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import socketio

FILLER = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")
# A PUT is sent again at most this many times, and never once the run is settling.
MAX_PUT_ATTEMPTS = 120
PUT_RETRY_S = 1.0
REQUEST_TIMEOUT_S = 10.0
RECONNECT_RETRY_S = 0.5


@dataclass(frozen=True)
class LoadShape:
    ttft_ms: int = 200
    token_interval_ms: int = 25
    reply_words: int = 40
    think_s: float = 2.0
    turn_timeout_s: float = 120.0
    flaky_share: float = 0.2
    # How often a flaky client leaves, and for how long.
    away_every_s: tuple[float, float] = (15.0, 45.0)
    away_for_s: tuple[float, float] = (3.0, 15.0)

    def reply(self, tag: str) -> str:
        return " ".join([tag, *(FILLER[i % len(FILLER)] for i in range(self.reply_words - 1))])

    def prompt(self, tag: str) -> str:
        return (
            f"Soak {tag}. [llm:ttft_ms={self.ttft_ms}]"
            f" [llm:token_interval_ms={self.token_interval_ms}] [llm:reply={self.reply(tag)}]"
        )


@dataclass
class Turn:
    tag: str
    client: int
    first_sent_at: float = 0.0
    accepted_at: float | None = None
    user_message_pk: int | None = None
    answered_at: float | None = None
    message_pk: int | None = None
    error_at: float | None = None
    text_ok: bool | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)


@dataclass
class Recorder:
    """Everything the clients saw, with wall-clock times."""

    # (t answered, status (-1: no answer), tag, seconds the request took)
    puts: list[tuple[float, int, str, float]] = field(default_factory=list)
    answers: list[tuple[float, str]] = field(default_factory=list)  # (t, tag) first arrival
    again: list[tuple[float, int]] = field(default_factory=list)  # (t, message_pk) copies
    errors: list[tuple[float, str]] = field(default_factory=list)  # (t, tag) error events
    wrong_pk: int = 0  # a turn answered with two different message_pks
    disconnects: list[tuple[float, str]] = field(default_factory=list)  # (t, why)
    reconnects: list[tuple[float, float]] = field(default_factory=list)  # (t, took_s)
    problems: list[str] = field(default_factory=list)


class SoakClient:
    def __init__(
        self,
        index: int,
        nodes: list[str],
        token: str,
        session_id: str,
        http: aiohttp.ClientSession,
        shape: LoadShape,
        recorder: Recorder,
        rng: random.Random,
        flaky: bool,
    ):
        self.index = index
        self.nodes = nodes
        self.node = index % len(nodes)
        self.token = token
        self.session_id = session_id
        self.http = http
        self.shape = shape
        self.rec = recorder
        self.rng = rng
        self.flaky = flaky
        self.sio: socketio.AsyncClient | None = None
        self.connected = asyncio.Event()
        self.away = False
        self.sending = True
        self.closing = False
        self.turns: list[Turn] = []
        self.by_tag: dict[str, Turn] = {}
        self.by_user_pk: dict[int, Turn] = {}
        self.seen_pks: set[int] = set()
        self._reconnecting: asyncio.Task[None] | None = None

    # -- the socket ----------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect to the current node and join the session; raises on failure."""
        sio = socketio.AsyncClient(reconnection=False, http_session=self.http, handle_sigint=False)
        sio.on("*", self._on_event)
        sio.on("disconnect", lambda *args: self._on_disconnect(sio))
        await sio.connect(
            self.nodes[self.node],
            auth={"token": self.token},
            transports=["websocket"],
            wait_timeout=10,
        )
        self.sio = sio
        answer = await sio.call(
            "start_session", {"session_id": self.session_id, "version": "soak"}, timeout=10
        )
        if not (isinstance(answer, dict) and answer.get("joined")):
            await sio.disconnect()
            raise RuntimeError(f"start_session: {answer}")
        self.connected.set()

    def _on_disconnect(self, sio: socketio.AsyncClient) -> None:
        if sio is not self.sio:
            return
        self.connected.clear()
        if self.away or self.closing:
            return
        # Dropped by the server (a killed web node): over to the other node, as a client
        # behind a load balancer would be.
        self.rec.disconnects.append((time.time(), "dropped"))
        self.node = (self.node + 1) % len(self.nodes)
        if self._reconnecting is None or self._reconnecting.done():
            self._reconnecting = asyncio.get_running_loop().create_task(self.reconnect())

    async def reconnect(self, deadline_s: float = 120.0) -> None:
        started = time.time()
        while not self.connected.is_set() and time.time() - started < deadline_s:
            try:
                await self.connect()
                self.rec.reconnects.append((time.time(), time.time() - started))
                return
            except Exception:  # refused, timed out, a node restarting: try the other
                with contextlib.suppress(Exception):
                    if self.sio is not None:
                        await self.sio.disconnect()
                self.node = (self.node + 1) % len(self.nodes)
                await asyncio.sleep(RECONNECT_RETRY_S)
        if not self.connected.is_set():
            self.rec.problems.append(f"client {self.index} could not reconnect")

    async def leave_for_a_while(self) -> None:
        """A flaky client: gone now and then, back later (replay on join)."""
        shape = self.shape
        while self.sending:
            await asyncio.sleep(self.rng.uniform(*shape.away_every_s))
            if not self.sending:
                return
            await self.connected.wait()
            self.away = True
            self.rec.disconnects.append((time.time(), "left"))
            with contextlib.suppress(Exception):
                assert self.sio is not None
                await self.sio.disconnect()
            self.connected.clear()
            await asyncio.sleep(self.rng.uniform(*shape.away_for_s))
            self.away = False
            await self.reconnect()

    async def _on_event(self, event: str, data: Any = None) -> Any:
        now = time.time()
        if not isinstance(data, dict):
            return None
        if event == "mojo_message":
            pk = data.get("message_pk")
            if pk in self.seen_pks:
                self.rec.again.append((now, pk))
            else:
                self.seen_pks.add(pk)
                text = str(data.get("text", ""))
                turn = self.by_tag.get(text.split(" ", 1)[0])
                if turn is None:
                    self.rec.problems.append(f"client {self.index}: unmatched answer {pk}")
                elif turn.message_pk is not None and turn.message_pk != pk:
                    self.rec.wrong_pk += 1
                elif turn.answered_at is None:
                    turn.answered_at, turn.message_pk = now, pk
                    turn.text_ok = text == self.shape.reply(turn.tag)
                    self.rec.answers.append((now, turn.tag))
                    turn.done.set()
            return {"session_id": data.get("session_id"), "message_pk": pk}
        if event == "error":
            turn = self.by_user_pk.get(data.get("user_message_pk"))  # type: ignore[arg-type]
            if turn is not None and turn.error_at is None:
                turn.error_at = now
                self.rec.errors.append((now, turn.tag))
                turn.done.set()
        return None

    # -- the turns -----------------------------------------------------------------------

    async def _put(self, turn: Turn) -> bool:
        """PUT /user_message until it is accepted (200), bounded; True once accepted."""
        body = {
            "session_id": self.session_id,
            "message_id": turn.tag,
            "text": self.shape.prompt(turn.tag),
        }
        for _attempt in range(MAX_PUT_ATTEMPTS):
            status = -1
            sent_at = time.time()
            try:
                async with self.http.put(
                    f"{self.nodes[self.node]}/user_message",
                    json=body,
                    headers={"Authorization": self.token},
                    timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
                ) as response:
                    status = response.status
                    answer = await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, ValueError):
                answer = None
            self.rec.puts.append((time.time(), status, turn.tag, time.time() - sent_at))
            if status == 200:
                turn.accepted_at = time.time()
                if isinstance(answer, dict) and isinstance(answer.get("message_pk"), int):
                    turn.user_message_pk = answer["message_pk"]
                    self.by_user_pk[answer["message_pk"]] = turn
                return True
            if status == -1 and not self.connected.is_set() and not self.away:
                self.node = (self.node + 1) % len(self.nodes)
            if not self.sending:
                return False
            await asyncio.sleep(PUT_RETRY_S)
        return False

    async def run(self, end_at: float) -> None:
        await asyncio.sleep(self.rng.uniform(0, 2.0))  # out of lockstep
        index = 0
        while self.sending and time.time() < end_at:
            # An away client sends nothing: it comes back first.
            await self.connected.wait()
            turn = Turn(f"k{self.index}t{index}", self.index, first_sent_at=time.time())
            index += 1
            self.turns.append(turn)
            self.by_tag[turn.tag] = turn
            if not await self._put(turn):
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(turn.done.wait(), self.shape.turn_timeout_s)
            await asyncio.sleep(self.shape.think_s * self.rng.uniform(0.5, 1.5))

    async def close(self) -> None:
        self.closing = True
        with contextlib.suppress(Exception):
            if self.sio is not None:
                await self.sio.disconnect()


async def register(
    http: aiohttp.ClientSession, base_url: str, count: int, run_tag: str
) -> list[tuple[str, str]]:
    """`count` users, each with one session: (token, session_id) pairs."""
    semaphore = asyncio.Semaphore(4)

    async def one(i: int) -> tuple[str, str]:
        async with semaphore:
            async with http.put(
                f"{base_url}/user",
                json={
                    "email": f"soak-{run_tag}-{i}@example.com",
                    "password": "soak password 123",
                    "name": f"Soak {i}",
                },
            ) as response:
                body = await response.json()
                if response.status != 200:
                    raise RuntimeError(f"PUT /user: {response.status} {body}")
                token = str(body["token"])
            async with http.put(
                f"{base_url}/session", json={"platform": "soak"}, headers={"Authorization": token}
            ) as response:
                body = await response.json()
                if response.status != 200:
                    raise RuntimeError(f"PUT /session: {response.status} {body}")
                return token, str(body["session_id"])

    return await asyncio.gather(*(one(i) for i in range(count)))
