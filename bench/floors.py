"""The floors no backend can beat, measured with the same workload as the backend.

1. `FloorSession`: the scripted LLM streamed straight to the client with the `openai`
   package (AsyncOpenAI in this process, the request and chunk reading of System1's
   common/llm/client.py), no backend in between.
2. `MinimalClient`: a user of the minimal pipeline (bench/minimal_pipeline.py): joins a room,
   POSTs turns, receives `mojo_token` / `mojo_message` through the same Socket.IO path.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import openai

from bench.loadgen import Turn, TurnClient, Workload
from common.llm import delta_content


class MinimalClient(TurnClient):
    """A user of the minimal pipeline: no account, no session, a room of its own."""

    ack = False  # the minimal pipeline emits without asking for acks

    async def setup(self) -> None:
        self.room = f"{self.run_tag}-room-{self.index}"
        await self.sio.connect(self.base_url, transports=["websocket"], wait_timeout=30)
        answer = await self.sio.call("join", {"room": self.room}, timeout=30)
        if not (isinstance(answer, dict) and answer.get("joined")):
            raise RuntimeError(f"join: {answer}")

    async def send(self, turn: Turn, text: str) -> int:
        async with self.http.post(
            f"{self.base_url}/turn", json={"room": self.room, "text": text}
        ) as response:
            await response.read()
            return response.status


class FloorSession:
    """One stream after another, straight from the LLM, recorded like a client's turns."""

    def __init__(self, index: int, client: openai.AsyncOpenAI, run_tag: str):
        self.index = index
        self.client = client
        self.run_tag = run_tag
        self.turns: list[Turn] = []
        self.errors: list[str] = []
        self.duplicates = 0
        self.unmatched = 0
        self.event_times: list[float] = []

    async def run_turns(self, workload: Workload, start_at: float, end_at: float) -> None:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        index = 0
        while time.time() < end_at:
            tag = f"{self.run_tag}c{self.index}t{index}"
            turn = Turn(self.index, index, tag, tokens=workload.reply_words)
            self.turns.append(turn)
            index += 1
            turn.sent_at = time.time()
            text = ""
            try:
                # The request and the reading of chunks of common/llm/client.py's stream_chat.
                stream = await self.client.post(
                    "/chat/completions",
                    body={
                        "model": "scripted",
                        "messages": [{"role": "user", "content": workload.prompt(tag)}],
                        "stream": True,
                    },
                    cast_to=object,
                    stream=True,
                    stream_cls=openai.AsyncStream[object],
                )
                turn.put_done_at = time.time()
                turn.put_status = 200
                async with stream:
                    async for chunk in stream:
                        content = delta_content(chunk)
                        if content:
                            now = time.time()
                            text += content
                            if turn.first_token_at is None:
                                turn.first_token_at = now
                            turn.last_token_at = now
                            turn.token_events += 1
                            self.event_times.append(now)
            except openai.APIError as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                turn.put_status = -1
                continue
            turn.message_at = time.time()
            turn.text_ok = text == workload.reply(tag)
            if workload.think_ms:
                await asyncio.sleep(workload.think_ms / 1000)

    async def close(self) -> None:
        """Close the shared client once, inside the event loop that used it."""
        if not self.client.is_closed():
            await self.client.close()


def make_floor_sessions(llm_base_url: str, count: int, run_tag: str) -> list[FloorSession]:
    client = openai.AsyncOpenAI(base_url=llm_base_url, api_key="scripted", max_retries=0)
    return [FloorSession(i, client, run_tag) for i in range(count)]


def new_http() -> aiohttp.ClientSession:
    """An HTTP session for many clients: no limit on open connections (websockets count)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, force_close=False),
        timeout=aiohttp.ClientTimeout(total=60),
    )
