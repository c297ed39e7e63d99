"""The LLM client: one `openai.OpenAI` per process, streaming chat completions.

A client and its first connection are slow to set up, so one is created per worker
process and reused by every turn (docs/performance.md, "LLM requests"); it is
thread-safe.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import openai

from common.llm.reusable_stream import ReusableStream
from common.settings import get_settings


@lru_cache(maxsize=1)
def get_llm_client() -> openai.OpenAI:
    settings = get_settings()
    return openai.OpenAI(
        api_key=settings.openai_api_key or "not-needed",
        base_url=settings.openai_base_url,
        # `read` bounds the silence between two chunks: a stalled stream ends.
        timeout=openai.Timeout(
            settings.llm_timeout_s, connect=5.0, read=settings.llm_stall_timeout_s
        ),
        # Retries are the turn task's (Celery countdown, no sleeping thread),
        # so that a failure mid-stream and one before it are treated alike.
        max_retries=0,
    )


def stream_chat(messages: list[dict[str, str]]) -> Iterator[str]:
    """Yield the text deltas of a streamed chat completion.

    The request goes through the client's generic `post`, the very call that
    `chat.completions.create` ends with (same HTTP client, timeouts, SSE parsing and
    `openai.APIError`s), without what `create` adds on the path of every token: a
    typed-parameter transform of the conversation, and pydantic models for each chunk
    (docs/performance.md, "LLM requests"). Chunks are read as plain JSON
    (`Stream[object]`), and only their text is taken.
    """
    settings = get_settings()
    stream = get_llm_client().post(
        "/chat/completions",
        body={
            "model": settings.llm_model,
            "messages": messages,
            "temperature": settings.llm_temperature,
            "stream": True,
        },
        cast_to=object,
        stream=True,
        stream_cls=ReusableStream,
    )
    with stream:
        for chunk in stream:
            content = delta_content(chunk)
            if content:
                yield content


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


def complete_chat(messages: list[dict[str, str]]) -> str:
    """A whole (non-streamed) chat completion, for short background prompts."""
    settings = get_settings()
    response = get_llm_client().chat.completions.create(
        model=settings.llm_model,
        messages=messages,  # type: ignore[arg-type]
        temperature=settings.llm_temperature,
    )
    return response.choices[0].message.content or ""
