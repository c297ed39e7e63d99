"""The minimal pipeline: POST -> Celery -> LLM -> emit -> client, and nothing else.

The floor of System1's own design: the same processes and libraries (Flask-SocketIO under
gunicorn with one gevent worker, a Celery worker with a threads pool on a Redis broker, the
`openai` package, the write-only emitter through Redis, the same token coalescing and garbage
collector settings), without a database, authentication, leases, stored messages or
acknowledged delivery.

- web: `gunicorn -k gevent -w 1 'bench.minimal_pipeline:create_web_app()'`: POST /turn
  {room, text} queues a turn; the Socket.IO event `join` {room} joins a room.
- worker: `celery -A bench.minimal_pipeline worker -P threads -Q bench-minimal`: streams the
  answer to `text` from the LLM with System1's own `common.llm.stream_chat`, emits
  `mojo_token` (coalesced by worker/streaming.py's TokenCoalescer) and `mojo_message`.

Configured by MINIMAL_REDIS_URL (broker and Socket.IO message queue), OPENAI_BASE_URL and
TOKEN_EMIT_INTERVAL_MS.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_ready
from flask_socketio import SocketIO

from common.gc_tuning import freeze_startup_objects
from common.llm import stream_chat


def _load_token_coalescer() -> Any:
    """worker/streaming.py's TokenCoalescer, the product's own code, loaded from its file:
    importing it as `worker.streaming` would run `worker/__init__`, which builds System1's
    Celery app and hooks its logging and publish signals into this process."""
    path = Path(__file__).resolve().parents[1] / "worker" / "streaming.py"
    spec = importlib.util.spec_from_file_location("bench._streaming", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TokenCoalescer


TokenCoalescer = _load_token_coalescer()

QUEUE = "bench-minimal"
TASK = "bench.minimal_turn"
# Socket.IO's Redis channel: pub/sub channels are shared by every Redis database.
CHANNEL = "system1-bench-minimal"
REDIS_URL = os.environ.get("MINIMAL_REDIS_URL", "redis://127.0.0.1:6379/1")

celery = Celery("bench_minimal", broker=REDIS_URL)
celery.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    accept_content=["json"],
)
_message_pks = itertools.count(1)


@worker_ready.connect
def _freeze_startup_objects(**_: Any) -> None:
    # As System1's workers do (common/celery/app.py).
    freeze_startup_objects()


def create_web_app() -> Any:
    """The web node (a factory, so that the worker never builds it)."""
    from flask import Flask, request
    from flask_socketio import join_room

    app = Flask("bench_minimal")
    socketio = SocketIO(
        app, message_queue=REDIS_URL, channel=CHANNEL, async_mode="gevent", cors_allowed_origins="*"
    )

    @app.post("/turn")
    def turn() -> dict[str, Any]:
        body = request.get_json()
        celery.send_task(TASK, args=[body["room"], body["text"]], queue=QUEUE)
        return {"queued": True}

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True}

    @socketio.on("join")
    def join(data: Any) -> dict[str, Any]:
        join_room(data["room"])
        return {"joined": True}

    # As System1's web node does once its app is loaded (web/gunicorn_conf.py).
    freeze_startup_objects()
    return app


@lru_cache(maxsize=1)
def _emitter() -> SocketIO:
    return SocketIO(message_queue=REDIS_URL, channel=CHANNEL)


@celery.task(name=TASK, ignore_result=True)
def minimal_turn(room: str, text: str) -> None:
    emitter = _emitter()
    interval_s = int(os.environ.get("TOKEN_EMIT_INTERVAL_MS", "50")) / 1000
    tokens = TokenCoalescer(
        interval_s, lambda so_far: emitter.emit("mojo_token", {"text": so_far}, to=room)
    )
    answer = ""
    # System1's own LLM call (common/llm/client.py): one client per process, same request, same
    # reading of the chunks.
    for delta in stream_chat([{"role": "user", "content": text}]):
        answer += delta
        tokens.push(answer)
    tokens.flush()
    pk = os.getpid() * 1_000_000 + next(_message_pks)
    emitter.emit("mojo_message", {"text": answer, "message_pk": pk, "session_id": room}, to=room)
