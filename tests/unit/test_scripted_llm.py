"""Tests of the scripted LLM server, over real HTTP with the real `openai` client.

The server is what every LLM-facing test of the backend stands on, so its promises are
checked the way the backend uses it: a subprocess on a free port, the `openai` package's
own parsing, real timeouts and real dropped connections.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import requests

from devtools.scripted_llm import parse_directives, reply_chunks, scripted_reply

ROOT = Path(__file__).resolve().parents[2]
ANSWER_WORDS = 12  # the fixture server's default answer length
MODEL = "scripted-test"


def start_server(*extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start `python -m devtools.scripted_llm` on a free port; return it and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.scripted_llm", "--port", "0", *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 15)
    if not ready:
        proc.kill()
        pytest.fail("scripted LLM did not print its start-up line within 15 s")
    line = proc.stdout.readline().decode().strip()
    prefix = "scripted LLM listening on "
    assert line.startswith(prefix), line
    return proc, line.removeprefix(prefix)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    proc, url = start_server("--answer-words", str(ANSWER_WORDS), "--model", MODEL)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def client(base_url: str) -> openai.OpenAI:
    """A client that never retries, so each call is exactly one request."""
    return openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=10)


@pytest.fixture
def root_url(base_url: str) -> str:
    return base_url.removesuffix("/v1")


def conversation(text: str) -> list[dict[str, Any]]:
    """A conversation whose system prompt names this run."""
    return [
        {"role": "system", "content": f"You are a test. Run {uuid.uuid4().hex}."},
        {"role": "user", "content": text},
    ]


def stats(root_url: str) -> dict[str, int]:
    return requests.get(f"{root_url}/_stats", timeout=5).json()


def wait_for(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.02)


# -- the pure functions --------------------------------------------------------------------


def test_scripted_reply_echoes_last_user_message_and_pads_to_answer_words() -> None:
    messages = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "whatever"},
        {"role": "user", "content": "How are you?"},
    ]
    reply = scripted_reply(messages, answer_words=12)
    assert reply == "Echo: How are you? Here is a scripted answer number one two."
    assert reply == scripted_reply(list(messages), answer_words=12)


def test_directives_are_stripped_from_the_echo() -> None:
    text, directives = parse_directives("Hi [llm:ttft_ms=5] there [llm:break_after=2]")
    assert text == "Hi there"
    assert (directives.ttft_ms, directives.break_after, directives.error) == (5, 2, None)


def test_reply_directive_answers_exact_text() -> None:
    messages = [{"role": "user", "content": "ignored [llm:reply=Exactly this, please.]"}]
    assert scripted_reply(messages) == "Exactly this, please."


def test_words_directive_sets_answer_length() -> None:
    reply = scripted_reply([{"role": "user", "content": "x [llm:words=30]"}], answer_words=3)
    assert len(reply.split()) == 30


def test_reply_chunks_join_back_to_the_text() -> None:
    text = "  Echo: a  b\nc. "
    chunks = reply_chunks(text)
    assert "".join(chunks) == text
    assert len(chunks) == 4


def test_unknown_directive_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown"):
        parse_directives("[llm:eror=500]")


def test_import_does_not_monkey_patch() -> None:
    from gevent import monkey

    assert not monkey.is_module_patched("socket")


# -- over HTTP -------------------------------------------------------------------------------


def test_health_reports_ok(root_url: str) -> None:
    assert requests.get(f"{root_url}/health", timeout=5).json() == {"status": "ok"}


def test_models_lists_configured_model(client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == [MODEL]


def test_non_stream_answer_equals_scripted_reply(client: openai.OpenAI) -> None:
    messages = conversation("Tell me something")
    completion = client.chat.completions.create(model="any-name", messages=messages)
    text = completion.choices[0].message.content
    assert text == scripted_reply(messages, ANSWER_WORDS)
    assert completion.model == "any-name"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(reply_chunks(text or ""))


def test_stream_deltas_join_to_scripted_reply(client: openai.OpenAI) -> None:
    messages = conversation("Stream it")
    stream = client.chat.completions.create(model=MODEL, messages=messages, stream=True)
    deltas = [chunk.choices[0].delta.content for chunk in stream if chunk.choices]
    pieces = [delta for delta in deltas if delta]
    assert "".join(pieces) == scripted_reply(messages, ANSWER_WORDS)
    assert len(pieces) == ANSWER_WORDS


@pytest.mark.parametrize(
    ("code", "error_class"),
    [
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
        (429, openai.RateLimitError),
    ],
)
def test_error_directive_returns_that_status(
    client: openai.OpenAI, code: int, error_class: type[openai.APIStatusError]
) -> None:
    with pytest.raises(error_class) as caught:
        client.chat.completions.create(model=MODEL, messages=conversation(f"[llm:error={code}]"))
    assert caught.value.status_code == code


def test_unknown_directive_over_http_is_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=conversation("[llm:nope=1]"))


def test_fail_first_fails_once_then_succeeds(client: openai.OpenAI) -> None:
    # Unique text: fail_first remembers conversations for the server's life.
    messages = conversation(f"retry me {uuid.uuid4().hex} [llm:fail_first=1]")
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=MODEL, messages=messages)
    completion = client.chat.completions.create(model=MODEL, messages=messages)
    assert completion.choices[0].message.content == scripted_reply(messages, ANSWER_WORDS)


def test_fail_first_counts_a_retry_with_a_new_system_prompt_as_the_same_conversation(
    client: openai.OpenAI,
) -> None:
    # System1 renders the user's clock into its system prompt: a retry a minute later
    # differs there, and is still the retry of the same request.
    asked = {"role": "user", "content": f"retry me {uuid.uuid4().hex} [llm:fail_first=1]"}
    first = [{"role": "system", "content": "It is 14:10 for the user."}, asked]
    retried = [{"role": "system", "content": "It is 14:11 for the user."}, asked]
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=MODEL, messages=first)

    completion = client.chat.completions.create(model=MODEL, messages=retried)

    assert completion.choices[0].message.content == scripted_reply(retried, ANSWER_WORDS)


def test_break_after_makes_stream_iteration_raise(client: openai.OpenAI) -> None:
    messages = conversation("cut me [llm:break_after=3]")
    stream = client.chat.completions.create(model=MODEL, messages=messages, stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError) as caught:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert not isinstance(caught.value, openai.APITimeoutError)
    assert "".join(received) == "".join(reply_chunks(scripted_reply(messages))[:3])


def test_stall_after_hits_client_read_timeout(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0, timeout=1.0)
    stream = client.chat.completions.create(
        model=MODEL, messages=conversation("hang [llm:stall_after=2]"), stream=True
    )
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        for _chunk in stream:
            pass
    assert time.monotonic() - started >= 0.9


def test_stalled_stream_ends_when_client_goes_away(client: openai.OpenAI, root_url: str) -> None:
    before = stats(root_url)["streams_broken"]
    stream = client.chat.completions.create(
        model=MODEL, messages=conversation("hang [llm:stall_after=1]"), stream=True
    )
    next(stream), next(stream)  # the role chunk and the one content chunk
    stream.close()
    wait_for(lambda: stats(root_url)["streams_broken"] == before + 1)


def test_ttft_directive_delays_first_chunk(client: openai.OpenAI) -> None:
    started = time.monotonic()
    stream = client.chat.completions.create(
        model=MODEL, messages=conversation("slow start [llm:ttft_ms=300]"), stream=True
    )
    next(iter(stream))
    assert time.monotonic() - started >= 0.3
    stream.close()


def test_control_changes_knobs(client: openai.OpenAI, root_url: str) -> None:
    original = requests.get(f"{root_url}/_control", timeout=5).json()
    try:
        answer = requests.post(f"{root_url}/_control", json={"answer_words": 5}, timeout=5)
        assert answer.json() == {**original, "answer_words": 5}
        messages = conversation("short")
        completion = client.chat.completions.create(model=MODEL, messages=messages)
        assert completion.choices[0].message.content == scripted_reply(messages, 5)
    finally:
        requests.post(f"{root_url}/_control", json=original, timeout=5)


def test_stats_count_finished_streams(client: openai.OpenAI, root_url: str) -> None:
    before = stats(root_url)
    stream = client.chat.completions.create(model=MODEL, messages=conversation("x"), stream=True)
    for _chunk in stream:
        pass
    wait_for(lambda: stats(root_url)["streams_finished"] == before["streams_finished"] + 1)
    after = stats(root_url)
    assert after["completion_requests"] == before["completion_requests"] + 1
    assert after["streams_started"] == before["streams_started"] + 1


def test_serves_200_concurrent_streams(base_url: str) -> None:
    """Each stream waits 500 ms before its first chunk; serially this would take 100 s."""

    async def one(client: openai.AsyncOpenAI, index: int) -> bool:
        messages = conversation(f"stream {index} [llm:ttft_ms=500] [llm:words=4]")
        stream = await client.chat.completions.create(model=MODEL, messages=messages, stream=True)
        parts = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
        return "".join(parts) == scripted_reply(messages, ANSWER_WORDS)

    async def run_all() -> list[bool]:
        async with openai.AsyncOpenAI(
            base_url=base_url, api_key="x", max_retries=0, timeout=30
        ) as client:
            return await asyncio.gather(*(one(client, i) for i in range(200)))

    started = time.monotonic()
    results = asyncio.run(run_all())
    assert all(results)
    assert time.monotonic() - started < 30


def test_sigterm_exits_cleanly() -> None:
    proc, url = start_server()
    assert requests.get(url.removesuffix("/v1") + "/health", timeout=5).ok
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


# -- real providers' limits and quirks -------------------------------------------------------


def test_a_request_longer_than_the_window_gets_openais_context_length_exceeded(
    client: openai.OpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL,
            messages=conversation("word " * 50 + "[llm:context_window=40]"),
        )
    assert caught.value.code == "context_length_exceeded"
    assert "maximum context length is 40 tokens" in str(caught.value)


def test_max_tokens_counts_against_the_window(client: openai.OpenAI) -> None:
    messages = conversation("short [llm:context_window=30]")
    client.chat.completions.create(model=MODEL, messages=messages)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=MODEL, messages=messages, max_tokens=25)


def test_an_answer_longer_than_max_tokens_is_cut_and_ends_for_length(
    client: openai.OpenAI,
) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=conversation("long [llm:words=30]"), max_tokens=5
    )
    assert len(completion.choices[0].message.content.split()) == 5
    assert completion.choices[0].finish_reason == "length"


def test_fail_model_fails_only_that_model(client: openai.OpenAI) -> None:
    messages = conversation("[llm:fail_model=primary] [llm:reply=ok]")
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="primary", messages=messages)
    completion = client.chat.completions.create(model="backup", messages=messages)
    assert completion.choices[0].message.content == "ok"


def test_retry_after_is_sent_with_the_error(root_url: str) -> None:
    response = requests.post(
        root_url + "/v1/chat/completions",
        json={"model": MODEL, "messages": conversation("[llm:error=429] [llm:retry_after=7]")},
        timeout=5,
    )
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"


def test_an_unknown_quirk_is_rejected() -> None:
    with pytest.raises(ValueError):
        parse_directives("[llm:quirk=polite]")
