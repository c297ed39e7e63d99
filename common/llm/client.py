"""The LLM client: one `openai.OpenAI` per process, streaming chat completions.

A client and its first connection are slow to set up, so one is created per worker
process and reused by every turn (docs/performance.md, "LLM requests"); it is
thread-safe.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import openai

from common import metrics
from common.llm.providers import Provider, primary_provider
from common.llm.reusable_stream import ReusableStream
from common.settings import get_settings


@lru_cache(maxsize=4)
def get_llm_client(provider: Provider | None = None) -> openai.OpenAI:
    """The client of `provider` (the primary by default)."""
    settings = get_settings()
    provider = provider or primary_provider()
    return openai.OpenAI(
        api_key=provider.api_key or "not-needed",
        base_url=provider.base_url,
        # `read` bounds the silence between two chunks: a stalled stream ends.
        timeout=openai.Timeout(
            settings.llm_timeout_s, connect=5.0, read=settings.llm_stall_timeout_s
        ),
        # Retries are the turn task's (Celery countdown, no sleeping thread),
        # so that a failure mid-stream and one before it are treated alike.
        max_retries=0,
    )


@dataclass
class Usage:
    """What one LLM call cost: as the LLM reported it, or estimated where it reported none."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    estimated: bool

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def count_tokens(usage: Usage) -> None:
    """Add an LLM call's tokens to the cluster's counters, by model."""
    metrics.increment("llm_prompt_tokens", usage.prompt_tokens, model=usage.model)
    metrics.increment("llm_completion_tokens", usage.completion_tokens, model=usage.model)


# Where the LLM reports no usage (some OpenAI-compatible servers ignore `stream_options`),
# tokens are estimated at about four characters each: OpenAI's rule of thumb for English.
CHARS_PER_TOKEN = 4


def estimate_tokens(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def _reported_usage(model: str, usage: Any) -> Usage | None:
    """The usage object of a response or final chunk, if it carries token counts."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return Usage(model, prompt, completion, estimated=False)


def _estimated_usage(model: str, messages: list[dict[str, str]], answer: str) -> Usage:
    prompt = sum(estimate_tokens(str(m.get("content", ""))) for m in messages)
    return Usage(model, prompt, estimate_tokens(answer), estimated=True)


class ChatStream:
    """A streamed chat completion: iterate it for the text deltas; once it is done (or
    closed early), `usage()` says what it cost and `finish_reason` why it ended.

    Usage and the finish reason are read from the chunks as they pass, with no per-token
    work beyond what `delta_content` did already.
    """

    def __init__(self, messages: list[dict[str, str]], stream: ReusableStream, model: str):
        self._messages = messages
        self._stream = stream
        self.model = model
        self.finish_reason: str | None = None
        self._reported: Usage | None = None
        self._text: list[str] = []

    def __iter__(self) -> Iterator[str]:
        with self._stream:
            for chunk in self._stream:
                if not isinstance(chunk, dict):
                    continue
                choices = chunk.get("choices")
                if isinstance(choices, list) and choices and isinstance(choices[0], dict):
                    choice = choices[0]
                    delta = choice.get("delta")
                    content = delta.get("content") if isinstance(delta, dict) else None
                    if choice.get("finish_reason"):
                        # Some servers send the last text and the reason in one chunk.
                        self.finish_reason = str(choice["finish_reason"])
                    if isinstance(content, str) and content:
                        self._text.append(content)
                        yield content
                if isinstance(chunk.get("usage"), dict):
                    # Usually a last chunk of its own (no or empty `choices`), but some
                    # servers put it in the finish chunk; OpenAI's others carry `null`.
                    self.model = str(chunk.get("model") or self.model)
                    self._reported = _reported_usage(self.model, chunk["usage"])

    def close(self) -> None:
        """Close the HTTP response: the LLM sees the connection go, and stops sending."""
        self._stream.close()

    def usage(self) -> Usage:
        """The usage the LLM reported; estimated from the texts if it reported none."""
        if self._reported is not None:
            return self._reported
        return _estimated_usage(self.model, self._messages, "".join(self._text))


def stream_chat(messages: list[dict[str, str]], provider: Provider | None = None) -> ChatStream:
    """A streamed chat completion; iterate it for the text deltas.

    The request goes through the client's generic `post`, the very call that
    `chat.completions.create` ends with (same HTTP client, timeouts, SSE parsing and
    `openai.APIError`s), without what `create` adds on the path of every token: a
    typed-parameter transform of the conversation, and pydantic models for each chunk
    (docs/performance.md, "LLM requests"). Chunks are read as plain JSON
    (`Stream[object]`), and only their text is taken.

    The usage is asked for (`stream_options.include_usage`): it comes in a last chunk.
    `provider` is the primary unless said.
    """
    settings = get_settings()
    provider = provider or primary_provider()
    body: dict[str, Any] = {
        "model": provider.model,
        "messages": messages,
        "temperature": settings.llm_temperature,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if settings.llm_max_answer_tokens:
        body["max_tokens"] = settings.llm_max_answer_tokens
    stream = get_llm_client(provider).post(
        "/chat/completions",
        body=body,
        cast_to=object,
        stream=True,
        stream_cls=ReusableStream,
    )
    return ChatStream(messages, stream, provider.model)


def delta_content(chunk: object) -> str | None:
    """The text of a chat.completion.chunk (as JSON), if it carries any."""
    if not isinstance(chunk, dict):
        return None
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    delta = choices[0].get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else None


def complete_chat(
    messages: list[dict[str, str]], provider: Provider | None = None
) -> tuple[str, Usage]:
    """A whole (non-streamed) chat completion, for short background prompts: its text
    and what it cost. `provider` is the primary unless said."""
    settings = get_settings()
    provider = provider or primary_provider()
    response = get_llm_client(provider).chat.completions.create(
        model=provider.model,
        messages=messages,  # type: ignore[arg-type]
        temperature=settings.llm_temperature,
        max_tokens=settings.llm_max_answer_tokens or openai.NOT_GIVEN,
    )
    text = response.choices[0].message.content or ""
    model = response.model or provider.model
    reported = response.usage.model_dump() if response.usage is not None else None
    return text, _reported_usage(model, reported) or _estimated_usage(model, messages, text)
