"""A deterministic, OpenAI-compatible chat server for tests and for `make run` without an LLM.

Why a real HTTP server and not a mock: the backend talks to any OpenAI-compatible endpoint
through the `openai` package, and the interesting failures (timeouts, half-sent streams,
retries, connection reuse) live in that client and its HTTP stack. Serving scripted answers
over real sockets lets the test suite exercise exactly the code that runs in production.

Answers depend only on the conversation, so a test can compute the expected text with
`scripted_reply(messages)` and compare it with what reached the user. Faults are requested
per conversation with directives in the last user message (see `parse_directives`), so one
test can break one request without disturbing any other request served by the same process.

Run it with `python -m devtools.scripted_llm [--port 8001] [--ttft-ms 0] ...`; it prints
`scripted LLM listening on http://HOST:PORT/v1` once it accepts connections (with
`--port 0` the line carries the port the OS picked). Endpoints:

- POST /v1/chat/completions  non-stream JSON or SSE stream, like the OpenAI API
- GET  /v1/models, GET /v1/models/<id>  (any model name is accepted by completions)
- GET  /health               {"status": "ok"}
- GET|POST /_control         read or set the knobs ttft_ms, token_interval_ms, answer_words,
                             context_window_tokens
- GET  /_stats               request and stream counters
- GET  /_streams             wall-clock timings of the latest streams (for benchmarks)
- POST /_reset               restore start-up knobs, zero the counters and timings, forget
                             fail_first

Importing this module has no side effects: gevent's monkey-patching happens in `main()` only,
so tests and tools can import the pure functions freely.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import http
import json
import os
import re
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from typing import Any

DEFAULT_MODEL = "scripted"
DEFAULT_ANSWER_WORDS = 20
DEFAULT_PORT = 8001
# How many streams /_streams remembers (the oldest are forgotten first).
STREAM_LOG_SIZE = 50_000
# How much of each answer a /_streams record carries, to tell streams apart.
STREAM_LOG_HEAD_CHARS = 48
# A stalled stream is abandoned after this long even if the client is still there, so a
# forgotten test client cannot pin a greenlet forever.
MAX_STALL_S = 300.0

Message = dict[str, Any]


# --------------------------------------------------------------------------------------------
# Directives: per-request behaviour requested from inside the conversation
# --------------------------------------------------------------------------------------------

DIRECTIVE_RE = re.compile(r"\[llm:([a-z_]+)=([^\]]*)\]")


@dataclass(frozen=True)
class Directives:
    """What the last user message asked of this request; None means "not asked"."""

    error: int | None = None
    fail_first: int | None = None
    break_after: int | None = None
    stall_after: int | None = None
    ttft_ms: int | None = None
    token_interval_ms: int | None = None
    words: int | None = None
    reply: str | None = None
    script: str | None = None
    usage: int | None = None
    context_window: int | None = None
    finish: str | None = None
    quirks: tuple[str, ...] = ()
    fail_status: int | None = None
    fail_model: str | None = None
    retry_after: int | None = None


# Integer directives and the smallest value each accepts.
_INT_DIRECTIVES: dict[str, int] = {
    "error": 400,
    "fail_first": 0,
    "break_after": 0,
    "stall_after": 0,
    "ttft_ms": 0,
    "token_interval_ms": 0,
    "words": 0,
    "usage": 0,
    "context_window": 1,
    "fail_status": 400,
    "retry_after": 0,
}
# How a stream may end, as OpenAI's `finish_reason` says it.
FINISH_REASONS = ("stop", "length", "content_filter")
# What real providers send that the polite default stream does not (see `_stream`).
QUIRKS = {
    "azure_prompt_filter": "a first chunk with empty `choices` and `prompt_filter_results`",
    "sse_comments": "SSE comments, blank keep-alive lines and data-less `ping` events",
    "usage_in_last_chunk": "the usage in the finish chunk, beside its `choices`",
    "usage_without_choices": "a usage-only final chunk with no `choices` key at all",
    "split_lines": "every `data:` line sent in three TCP writes",
    "extra_fields": "unknown fields in chunks, choices and deltas",
    "role_only_first": "a first delta with the role and no `content` key",
    "error_event": "an SSE `error` event after two content chunks, in the 200 stream",
}


def parse_directives(text: str) -> tuple[str, Directives]:
    """Split `text` into the text without directives and the directives it carries.

    A directive is `[llm:NAME=VALUE]`; VALUE runs to the next `]`, so `[llm:reply=a b c]`
    works. Supported names:

    - `error=CODE`          answer HTTP CODE (400-599) with an OpenAI-style error body
    - `fail_first=N`        the first N identical conversations (system prompt aside) get a
                            500, later ones succeed
    - `fail_status=CODE`    the status `fail_first` and `fail_model` answer with (default 500)
    - `fail_model=NAME`     requests for the model NAME fail (a primary down, its fallback up)
    - `retry_after=S`       error answers carry `Retry-After: S`, as rate limits and 503s do
    - `break_after=N`       stream N content chunks, then drop the connection without [DONE]
    - `stall_after=N`       stream N content chunks, then go silent (connection kept open)
    - `ttft_ms=N`           delay before the first chunk, for this request
    - `token_interval_ms=N` delay between content chunks, for this request
    - `words=N`             length of the scripted answer, for this request
    - `reply=TEXT`          answer exactly TEXT
    - `script=NAME`         answer with the named script (see SCRIPTS)
    - `usage=0`             report no usage even when asked for it (`include_usage`), as
                            some OpenAI-compatible servers do; `usage=1` is the default
    - `context_window=N`    this request's context window in tokens (see `prompt_tokens`);
                            a longer request (prompt + `max_tokens`) gets OpenAI's 400
                            `context_length_exceeded`
    - `quirk=A,B`           stream as real providers do (any of QUIRKS, comma-separated)
    - `finish=REASON`       end the stream with this `finish_reason`: stop, length or
                            content_filter (a `max_tokens` shorter than the answer also
                            cuts it, with `length`, as OpenAI does)

    Unknown names and malformed values raise ValueError (the server answers 400), because a
    silently ignored typo would make a fault test pass for the wrong reason. New directives
    go into `Directives`, `_INT_DIRECTIVES` (if numeric) and this docstring.
    """
    values: dict[str, Any] = {}
    for match in DIRECTIVE_RE.finditer(text):
        name, raw = match.group(1), match.group(2)
        if name == "reply":
            values[name] = raw
            continue
        if name == "quirk":
            quirks = tuple(q.strip() for q in raw.split(",") if q.strip())
            unknown = [q for q in quirks if q not in QUIRKS]
            if unknown or not quirks:
                raise ValueError(f"unknown quirk {raw!r}; known: {sorted(QUIRKS)}")
            values["quirks"] = quirks
            continue
        if name == "fail_model":
            values[name] = raw.strip()
            continue
        if name == "finish":
            if raw not in FINISH_REASONS:
                raise ValueError(f"unknown finish reason {raw!r}; known: {FINISH_REASONS}")
            values[name] = raw
            continue
        if name == "script":
            if raw not in SCRIPTS:
                raise ValueError(f"unknown script {raw!r}; known: {sorted(SCRIPTS)}")
            values[name] = raw
            continue
        if name not in _INT_DIRECTIVES:
            raise ValueError(f"unknown scripted LLM directive [llm:{name}=...]")
        try:
            number = int(raw.strip())
        except ValueError:
            raise ValueError(f"directive [llm:{name}=...] needs an integer, got {raw!r}") from None
        if number < _INT_DIRECTIVES[name] or (name in ("error", "fail_status") and number > 599):
            raise ValueError(f"directive [llm:{name}={number}] is out of range")
        values[name] = number
    stripped = " ".join(DIRECTIVE_RE.sub(" ", text).split())
    return stripped, Directives(**values)


def message_text(message: Message) -> str:
    """The text of one chat message, whether `content` is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def last_user_text(messages: list[Message]) -> str:
    """The raw text of the last user message; directives are only honoured there."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message)
    return ""


# --------------------------------------------------------------------------------------------
# Scripts: the pure function from conversation to answer
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Conversation:
    """Everything a script may look at; scripts must not use anything else (determinism)."""

    messages: list[Message]
    user_text: str  # last user message with directives stripped
    directives: Directives
    answer_words: int


Script = Callable[[Conversation], str]

_NUMBER_ONES = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
]  # fmt: skip
_NUMBER_TENS = [
    "",
    "",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
]
_FILLER_PREFIX = ["Here", "is", "a", "scripted", "answer", "number"]


def _number_word(n: int) -> str:
    """English for 1..999 as one hyphenated word, so every filler word is one chunk."""
    if n >= 1000:
        return str(n)
    if n >= 100:
        head = f"{_NUMBER_ONES[n // 100]}-hundred"
        return head if n % 100 == 0 else f"{head}-{_number_word(n % 100)}"
    if n >= 20:
        tens = _NUMBER_TENS[n // 10]
        return tens if n % 10 == 0 else f"{tens}-{_NUMBER_ONES[n % 10]}"
    return _NUMBER_ONES[n]


def filler_words(count: int) -> list[str]:
    """The first `count` words of the fixed filler "Here is a scripted answer number one two…"."""
    words = _FILLER_PREFIX[:count]
    words += [_number_word(i) for i in range(1, count - len(words) + 1)]
    return words


def echo_script(conversation: Conversation) -> str:
    """`Echo: <user text>.` then filler up to `answer_words` words in total.

    Echoing proves which message was answered; the filler gives streams a tunable length.
    The echo is never truncated, so the answer has max(answer_words, echo length) words.
    """
    text = conversation.user_text or "nothing"
    echo = f"Echo: {text}" if text[-1] in ".!?" else f"Echo: {text}."
    words = echo.split()
    filler = filler_words(max(0, conversation.answer_words - len(words)))
    if not filler:
        return echo
    return f"{echo} {' '.join(filler)}."


def history_script(conversation: Conversation) -> str:
    """The roles of the messages the model was sent, oldest first: shows what the
    backend rebuilt of the conversation."""
    roles = " ".join(str(m.get("role", "?")) for m in conversation.messages)
    return f"Seen: {roles}."


TASK_MARKER = "<execution><title>"
TITLE_MARKER = "Write a short title"
TODOS_MARKER = "List the follow-up actions"
_TODAY = re.compile(r"Today is (\d{4}-\d{2}-\d{2})")


def _task_name(conversation: Conversation) -> str:
    for message in conversation.messages:
        for line in message_text(message).splitlines():
            if line.startswith("TASK: ") or line.startswith("Task: "):
                return line.split(": ", 1)[1].strip()
    return "your task"


def task_script(conversation: Conversation) -> str:
    """A task conversation, as Mojodex's instruct tasks play it: the first
    answer asks for a missing fact; every later answer writes the whole result
    inside `<execution>` tags (a revision is a new whole version)."""
    name = _task_name(conversation)
    answered = sum(1 for m in conversation.messages if m.get("role") == "assistant")
    if answered == 0:
        return f'For "{name}", I need one more detail: who is it for, and what tone?'
    body_words = filler_words(conversation.answer_words)
    body = (
        f"Draft for {name}.\n\n"
        f"Based on: {conversation.user_text or 'your answers'}.\n\n"
        f"{' '.join(body_words)}.\n\nBest regards"
    )
    return f"Here is the result.<execution><title>{name}</title><draft>{body}</draft></execution>"


def title_script(conversation: Conversation) -> str:
    """The title of a task execution: derived from the task's name."""
    return f"{_task_name(conversation)}: first draft"


def todos_script(conversation: Conversation) -> str:
    """Two follow-up actions of a task, as the JSON the todo prompt asks for: one due
    the day after the prompt's "Today is", one a week after it."""
    texts = [message_text(m) for m in conversation.messages]
    found = next((m for m in map(_TODAY.search, texts) if m), None)
    today = date.fromisoformat(found.group(1)) if found else date(2000, 1, 1)
    name = _task_name(conversation)
    todos = [
        {"description": f"Send the result of {name}.", "due_date": today + timedelta(days=1)},
        {"description": f"Follow up on {name}.", "due_date": today + timedelta(days=7)},
    ]
    return json.dumps(
        {"todos": [{**todo, "due_date": todo["due_date"].isoformat()} for todo in todos]}
    )


SCRIPTS: dict[str, Script] = {
    "echo": echo_script,
    "history": history_script,
    "task": task_script,
    "title": title_script,
    "todos": todos_script,
}


def pick_script(conversation: Conversation) -> Script:
    """Choose the script that answers this conversation.

    Extension point: further scripts (e.g. a "task conversation" that first asks a question
    and then writes `<execution><title>…</title><draft>…</draft></execution>`) are selected
    here from the messages (say, a marker in the system prompt or the turn count). Whatever
    is chosen must depend only on `conversation`. `[llm:script=NAME]` picks one by name;
    otherwise a task prompt (it asks for `<execution>` tags) plays the task script, and a
    title request the title script, a todo request the todos script.
    """
    if conversation.directives.script:
        return SCRIPTS[conversation.directives.script]
    texts = [message_text(m) for m in conversation.messages]
    if any(text.startswith(TITLE_MARKER) for text in texts):
        return title_script
    if any(text.startswith(TODOS_MARKER) for text in texts):
        return todos_script
    if any(TASK_MARKER in text for text in texts if text):
        return task_script
    return echo_script


def build_conversation(
    messages: list[Message], answer_words: int = DEFAULT_ANSWER_WORDS
) -> Conversation:
    """Parse the last user message once; `[llm:words=N]` overrides `answer_words`."""
    user_text, directives = parse_directives(last_user_text(messages))
    if directives.words is not None:
        answer_words = directives.words
    return Conversation(messages, user_text, directives, answer_words)


def scripted_reply(messages: list[Message], answer_words: int = DEFAULT_ANSWER_WORDS) -> str:
    """The answer the server gives to `messages` (OpenAI chat format) at this answer length.

    Pure and stable across runs and processes, so tests compute the expected text with it.
    Raises ValueError for malformed directives.
    """
    return reply_for(build_conversation(messages, answer_words))


def reply_for(conversation: Conversation) -> str:
    """The answer to an already parsed conversation: `[llm:reply=…]` wins over any script."""
    if conversation.directives.reply is not None:
        return conversation.directives.reply
    return pick_script(conversation)(conversation)


# What each message costs besides its words (role, separators), as in `prompt_tokens`.
PER_MESSAGE_TOKENS = 4


def prompt_tokens(messages: list[Message]) -> int:
    """The scripted model's count of a prompt's tokens: one per word, plus
    PER_MESSAGE_TOKENS per message. What its window and its usage count."""
    return sum(len(message_text(m).split()) + PER_MESSAGE_TOKENS for m in messages)


_CHUNK_RE = re.compile(r"\s*\S+\s*")


def reply_chunks(text: str) -> list[str]:
    """The streamed deltas of `text`: one word plus its following whitespace each.

    `"".join(reply_chunks(text)) == text` always holds (leading whitespace rides on the
    first chunk; whitespace-only text is one chunk; empty text has no chunks).
    """
    chunks = _CHUNK_RE.findall(text)
    if text and not chunks:
        return [text]
    return chunks


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


@dataclass
class Knobs:
    """Runtime-tunable defaults; per-request directives override them."""

    ttft_ms: int = 0
    token_interval_ms: int = 0
    answer_words: int = DEFAULT_ANSWER_WORDS
    # 0: no window; else requests longer than this many tokens get a 400.
    context_window_tokens: int = 0


@dataclass
class Stats:
    """Counters for /_stats, so tests can see what the LLM side observed.

    `streams_broken` counts every stream that ended without `[DONE]`: a break or stall
    directive, or the client going away early; `streams_closed_by_client` the latter
    alone (a client that closed the connection mid-stream, as a stopped turn does).
    """

    # TCP connections accepted: a client that reuses its connections opens few.
    connections_accepted: int = 0
    completion_requests: int = 0
    errors_injected: int = 0
    # Requests refused as longer than the context window.
    context_length_refusals: int = 0
    streams_started: int = 0
    streams_finished: int = 0
    streams_broken: int = 0
    streams_closed_by_client: int = 0

    def snapshot(self) -> dict[str, int]:
        data = asdict(self)
        data["streams_active"] = self.streams_started - self.streams_finished - self.streams_broken
        return data


class _DeliberateBreak(ConnectionResetError):
    """Raised inside a response to drop the connection.

    gevent's pywsgi treats ECONNRESET as "client went away": it closes the socket quietly
    without the terminating chunk, which is exactly the abrupt end a broken upstream gives.
    """

    def __init__(self) -> None:
        super().__init__(errno.ECONNRESET, "scripted LLM dropped the connection on purpose")


class HttpError(Exception):
    """An OpenAI-style error answer."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.retry_after = retry_after


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}

StartResponse = Callable[..., Callable[[bytes], Any]]


def _status_line(status: int) -> str:
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Scripted Error"


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def _sse_event(name: str, payload: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


# Azure OpenAI's first chunk: the prompt's content filter verdict, no choices.
AZURE_PROMPT_FILTER_CHUNK: dict[str, Any] = {
    "choices": [],
    "created": 0,
    "id": "",
    "model": "",
    "object": "",
    "prompt_filter_results": [
        {
            "prompt_index": 0,
            "content_filter_results": {
                "hate": {"filtered": False, "severity": "safe"},
                "self_harm": {"filtered": False, "severity": "safe"},
                "sexual": {"filtered": False, "severity": "safe"},
                "violence": {"filtered": False, "severity": "safe"},
            },
        }
    ],
}
# What OpenAI sends when a stream fails after its 200 status.
STREAM_ERROR: dict[str, Any] = {
    "error": {
        "message": "The server had an error while processing your request.",
        "type": "server_error",
        "param": None,
        "code": "server_error",
    }
}


def _conversation_key(messages: list[Message]) -> str:
    """What makes two requests "the same conversation" for `fail_first`: its messages, the
    system prompt aside. A client's retry renders its system prompt again, and System1's
    carries the user's clock to the minute: a retry across a minute is the same request."""
    asked = [m for m in messages if m.get("role") != "system"]
    return hashlib.sha256(json.dumps(asked, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class _Plan:
    """How one completion request will be answered, decided before the first byte."""

    messages: list[Message]
    directives: Directives
    text: str
    model: str
    ttft_s: float
    interval_s: float
    include_usage: bool
    sock: socket.socket | None
    finish: str = "stop"
    prompt_tokens: int = 0


@dataclass
class ScriptedLLM:
    """The WSGI application; one instance holds the knobs, counters and fail_first memory.

    Runs under gevent's pywsgi: every wait is a `gevent.sleep`, so hundreds of slow
    streams cost one greenlet each.
    """

    model: str = DEFAULT_MODEL
    knobs: Knobs = field(default_factory=Knobs)
    stats: Stats = field(default_factory=Stats)
    _initial_knobs: Knobs = field(init=False)
    _seen: dict[str, int] = field(default_factory=dict, init=False)
    _ids: int = field(default=0, init=False)
    # One record per stream: when it was asked for, sent its first and last content
    # chunk, and ended (time.time(), comparable across processes on one machine).
    stream_log: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=STREAM_LOG_SIZE), init=False
    )

    def __post_init__(self) -> None:
        self._initial_knobs = replace(self.knobs)

    # -- WSGI entry --------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        try:
            if path == "/v1/chat/completions" and method == "POST":
                return self._completions(environ, start_response)
            if path == "/v1/models" and method == "GET":
                return self._json(start_response, {"object": "list", "data": [self._model()]})
            if path.startswith("/v1/models/") and method == "GET":
                return self._json(start_response, self._model(path.removeprefix("/v1/models/")))
            if path == "/health" and method == "GET":
                return self._json(start_response, {"status": "ok"})
            if path == "/_control" and method == "GET":
                return self._json(start_response, asdict(self.knobs))
            if path == "/_control" and method == "POST":
                return self._json(start_response, self._set_knobs(self._read_json(environ)))
            if path == "/_stats" and method == "GET":
                return self._json(start_response, self.stats.snapshot())
            if path == "/_streams" and method == "GET":
                return self._json(start_response, {"streams": list(self.stream_log)})
            if path == "/_reset" and method == "POST":
                self.knobs, self.stats, self._seen = replace(self._initial_knobs), Stats(), {}
                self.stream_log.clear()
                return self._json(start_response, asdict(self.knobs))
            raise HttpError(404, f"no route for {method} {path}", "not_found")
        except HttpError as error:
            return self._error(start_response, error)

    # -- helpers -----------------------------------------------------------------------------

    def _model(self, model_id: str | None = None) -> dict[str, Any]:
        return {
            "id": model_id or self.model,
            "object": "model",
            "created": 0,
            "owned_by": "system1",
        }

    @staticmethod
    def _read_json(environ: dict[str, Any]) -> dict[str, Any]:
        try:
            body = json.loads(environ["wsgi.input"].read() or b"{}")
        except ValueError:
            raise HttpError(400, "request body is not valid JSON", "invalid_json") from None
        if not isinstance(body, dict):
            raise HttpError(400, "request body must be a JSON object", "invalid_json")
        return body

    @staticmethod
    def _json(
        start_response: StartResponse,
        payload: dict[str, Any],
        status: int = 200,
        extra_headers: list[tuple[str, str]] | None = None,
    ) -> Iterator[bytes]:
        body = json.dumps(payload).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        headers += extra_headers or []
        start_response(_status_line(status), headers)
        return iter([body])

    def _error(self, start_response: StartResponse, error: HttpError) -> Iterator[bytes]:
        kind = _ERROR_TYPES.get(error.status, "server_error" if error.status >= 500 else "error")
        body = {
            "error": {
                "message": error.message,
                "type": kind,
                "param": error.param,
                "code": error.code,
            }
        }
        headers = [("Retry-After", str(error.retry_after))] if error.retry_after else []
        return self._json(start_response, body, error.status, headers)

    def _set_knobs(self, body: dict[str, Any]) -> dict[str, Any]:
        known = asdict(self.knobs)
        for name, value in body.items():
            if name not in known:
                raise HttpError(400, f"unknown knob {name!r}; knobs are {sorted(known)}")
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise HttpError(400, f"knob {name!r} needs a non-negative integer")
        self.knobs = replace(self.knobs, **body)
        return asdict(self.knobs)

    def _next_id(self) -> str:
        self._ids += 1
        return f"chatcmpl-scripted-{self._ids:06d}"

    # -- completions -------------------------------------------------------------------------

    def _completions(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterator[bytes]:
        received_at = time.time()
        self.stats.completion_requests += 1
        body = self._read_json(environ)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise HttpError(400, "'messages' must be a non-empty list", "invalid_messages")
        try:
            conversation = build_conversation(messages, self.knobs.answer_words)
        except ValueError as exc:
            raise HttpError(400, str(exc), "invalid_directive") from None
        directives = conversation.directives

        if directives.error is not None:
            self.stats.errors_injected += 1
            raise HttpError(
                directives.error,
                "scripted error on request",
                "scripted_error",
                retry_after=directives.retry_after,
            )
        if directives.fail_model is not None and body.get("model") == directives.fail_model:
            self.stats.errors_injected += 1
            raise HttpError(
                directives.fail_status or 500,
                f"scripted failure of model {directives.fail_model}",
                "scripted_error",
                retry_after=directives.retry_after,
            )
        if directives.fail_first is not None:
            key = _conversation_key(messages)
            self._seen[key] = self._seen.get(key, 0) + 1
            if self._seen[key] <= directives.fail_first:
                self.stats.errors_injected += 1
                raise HttpError(
                    directives.fail_status or 500,
                    "scripted fail_first failure",
                    "scripted_error",
                    retry_after=directives.retry_after,
                )

        window = _pick(directives.context_window, self.knobs.context_window_tokens)
        prompt = prompt_tokens(messages)
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        max_tokens = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else None
        if window and prompt + (max_tokens or 0) > window:
            self.stats.context_length_refusals += 1
            # OpenAI's words and code for it.
            raise HttpError(
                400,
                f"This model's maximum context length is {window} tokens. However, you "
                f"requested {prompt + (max_tokens or 0)} tokens ({prompt} in the messages, "
                f"{max_tokens or 0} in the completion). Please reduce the length of the "
                "messages or completion.",
                "context_length_exceeded",
                param="messages",
            )
        text = reply_for(conversation)
        finish = directives.finish or "stop"
        if max_tokens is not None and len(reply_chunks(text)) > max_tokens:
            text, finish = "".join(reply_chunks(text)[:max_tokens]), "length"

        plan = _Plan(
            messages=messages,
            directives=directives,
            text=text,
            finish=finish,
            prompt_tokens=prompt,
            model=str(body.get("model") or self.model),
            ttft_s=_pick(directives.ttft_ms, self.knobs.ttft_ms) / 1000,
            interval_s=_pick(directives.token_interval_ms, self.knobs.token_interval_ms) / 1000,
            include_usage=bool((body.get("stream_options") or {}).get("include_usage"))
            and directives.usage != 0,
            sock=environ.get("scripted_llm.socket"),
        )
        if body.get("stream"):
            return self._stream(start_response, plan, received_at)
        return self._complete(start_response, plan)

    def _usage(self, plan: _Plan) -> dict[str, int]:
        prompt = plan.prompt_tokens
        completion = len(reply_chunks(plan.text))
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _complete(self, start_response: StartResponse, plan: _Plan) -> Iterator[bytes]:
        """Non-stream answer; break/stall act before any byte of the response is sent."""
        import gevent

        gevent.sleep(plan.ttft_s)
        if plan.directives.stall_after is not None:
            _stall(plan.sock)
            raise _DeliberateBreak()
        if plan.directives.break_after is not None:
            raise _DeliberateBreak()
        payload = {
            "id": self._next_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": plan.model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": plan.text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": plan.finish,
                }
            ],
            "usage": self._usage(plan) if plan.directives.usage != 0 else None,
        }
        return self._json(start_response, payload)

    def _stream(
        self, start_response: StartResponse, plan: _Plan, received_at: float = 0.0
    ) -> Iterator[bytes]:
        """SSE answer: headers at once, then role chunk after TTFT, then one word per chunk."""
        import gevent

        write = start_response(
            "200 OK",
            [
                ("Content-Type", "text/event-stream"),
                ("Cache-Control", "no-cache"),
                ("X-Accel-Buffering", "no"),
            ],
        )
        chunk_id, created = self._next_id(), int(time.time())
        head = {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": plan.model,
        }

        quirks = plan.directives.quirks
        if "extra_fields" in quirks:
            head = {**head, "service_tier": "default", "x_provider": {"region": "eu", "n": 1}}

        def chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            if "extra_fields" in quirks:
                choice["content_filter_results"] = {}
                delta = {**delta, "refusal": None, "reasoning_content": None}
                choice["delta"] = delta
            payload = {**head, "system_fingerprint": None, "choices": [choice]}
            if usage is not None:
                payload["usage"] = usage
            return _sse(payload)

        def send(event: bytes) -> Iterator[bytes]:
            """One SSE event, as the quirks ask it to travel."""
            if "sse_comments" in quirks:
                yield b": keep-alive\n\n"
                yield b"\n"
            if "split_lines" in quirks:
                # Separate writes, a moment apart: the client reads them separately.
                third = max(1, len(event) // 3)
                for start in range(0, len(event), third):
                    yield event[start : start + third]
                    gevent.sleep(0.002)
                return
            yield event

        directives = plan.directives
        pieces = reply_chunks(plan.text)
        # Where the stream is cut short, if a break or stall was asked for.
        cut = _pick(directives.break_after, directives.stall_after)
        stats = self.stats
        record: dict[str, Any] = {
            "head": plan.text[:STREAM_LOG_HEAD_CHARS],
            "received_at": received_at,
            "first_chunk_at": None,
            "last_chunk_at": None,
            "ended_at": None,
            "chunks": 0,
            # Whether the client closed the connection before the end, and the usage
            # reported in the last chunk (None if not asked for or not reached).
            "closed_by_client": False,
            "usage": None,
            # What reached the model: how many messages, and their tokens as it counts them.
            "messages": len(plan.messages),
            "prompt_tokens": plan.prompt_tokens,
        }
        self.stream_log.append(record)

        def generate() -> Iterator[bytes]:
            stats.streams_started += 1
            finished = deliberate = False
            try:
                # Flush the headers now: like the real API, create() returns before the first
                # token, and the TTFT is spent waiting for chunks.
                write(b"")
                gevent.sleep(plan.ttft_s)
                if "azure_prompt_filter" in quirks:
                    yield from send(_sse(AZURE_PROMPT_FILTER_CHUNK))
                if "sse_comments" in quirks:
                    yield b"event: ping\n\n"
                first = {"role": "assistant"}
                yield from send(
                    chunk(first if "role_only_first" in quirks else {**first, "content": ""})
                )
                for index, piece in enumerate(pieces):
                    if index == cut:
                        break
                    if "error_event" in quirks and index == 2:
                        yield from send(_sse_event("error", STREAM_ERROR))
                        deliberate = True
                        return
                    if index:
                        gevent.sleep(plan.interval_s)
                    yield from send(chunk({"content": piece}))
                    record["last_chunk_at"] = time.time()
                    if not index:
                        record["first_chunk_at"] = record["last_chunk_at"]
                    record["chunks"] = index + 1
                if cut is not None:
                    if directives.break_after is None:
                        _stall(plan.sock)
                    deliberate = True
                    raise _DeliberateBreak()
                if plan.include_usage:
                    record["usage"] = self._usage(plan)
                if "usage_in_last_chunk" in quirks:
                    yield from send(chunk({}, plan.finish, usage=record["usage"]))
                else:
                    yield from send(chunk({}, plan.finish))
                    if record["usage"] is not None:
                        final = {**head, "choices": [], "usage": record["usage"]}
                        if "usage_without_choices" in quirks:
                            del final["choices"]
                        yield from send(_sse(final))
                yield from send(_sse("[DONE]"))
                finished = True
            finally:
                record["ended_at"] = time.time()
                if finished:
                    stats.streams_finished += 1
                else:
                    stats.streams_broken += 1
                    if not deliberate:
                        stats.streams_closed_by_client += 1
                        record["closed_by_client"] = True

        return generate()


def _pick(override: int | None, default: int | None) -> Any:
    """`override` unless it is None."""
    return default if override is None else override


def _stall(sock: socket.socket | None) -> None:
    """Send nothing until the client closes its end, or MAX_STALL_S passes.

    Watching the socket (rather than sleeping blindly) frees the greenlet as soon as the
    client's read timeout fires, so stall tests do not leave work behind.
    """
    import gevent
    from gevent import select

    if sock is None:
        gevent.sleep(MAX_STALL_S)
        return
    started = time.monotonic()
    readable, _, _ = select.select([sock], [], [], MAX_STALL_S)
    if not readable:
        return
    try:
        if not sock.recv(1, socket.MSG_PEEK):
            return  # orderly close by the client
    except OSError:
        return  # reset by the client
    # The client sent more bytes (pipelining): keep stalling, without busy-polling.
    gevent.sleep(max(0.0, MAX_STALL_S - (time.monotonic() - started)))


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """CLI flags; each numeric default can come from a SCRIPTED_LLM_* variable."""
    parser = argparse.ArgumentParser(
        prog="python -m devtools.scripted_llm", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port",
        type=int,
        default=_env_int("SCRIPTED_LLM_PORT", DEFAULT_PORT),
        help="0 picks a free port (printed in the start-up line)",
    )
    parser.add_argument(
        "--ttft-ms", type=int, default=_env_int("SCRIPTED_LLM_TTFT_MS", 0), help="first-chunk delay"
    )
    parser.add_argument(
        "--token-interval-ms",
        type=int,
        default=_env_int("SCRIPTED_LLM_TOKEN_INTERVAL_MS", 0),
        help="delay between content chunks",
    )
    parser.add_argument(
        "--answer-words",
        type=int,
        default=_env_int("SCRIPTED_LLM_ANSWER_WORDS", DEFAULT_ANSWER_WORDS),
        help="words per scripted answer",
    )
    parser.add_argument(
        "--context-window-tokens",
        type=int,
        default=_env_int("SCRIPTED_LLM_CONTEXT_WINDOW_TOKENS", 0),
        help="the model's window (0: none); longer requests get 400 context_length_exceeded",
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model id listed by /v1/models")
    parser.add_argument("--access-log", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    for name in ("ttft_ms", "token_interval_ms", "answer_words", "context_window_tokens"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM; returns the process exit code."""
    from gevent import monkey

    monkey.patch_all()

    import gevent
    from gevent.event import Event
    from gevent.pywsgi import WSGIHandler, WSGIServer

    args = parse_args(argv)

    class Handler(WSGIHandler):
        """Exposes the client socket (for stall detection) and disables Nagle.

        Without TCP_NODELAY, small SSE writes wait for delayed ACKs (~40 ms), which would
        distort every timing a test measures.
        """

        def get_environ(self) -> dict[str, Any]:
            env = super().get_environ()
            env["scripted_llm.socket"] = self.socket
            return env

        def handle(self) -> None:
            app.stats.connections_accepted += 1
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            super().handle()

    app = ScriptedLLM(
        model=args.model,
        knobs=Knobs(
            args.ttft_ms, args.token_interval_ms, args.answer_words, args.context_window_tokens
        ),
    )
    server = WSGIServer(
        (args.host, args.port),
        app,
        handler_class=Handler,
        log="default" if args.access_log else None,
        backlog=2048,
    )
    server.start()
    stop = Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, stop.set)
    print(f"scripted LLM listening on http://{args.host}:{server.server_port}/v1", flush=True)
    stop.wait()
    server.stop(timeout=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
