"""The LLM client: one `openai.OpenAI` per process, streaming chat completions.

Building a client costs about 60 ms and its first request about 40 ms more
(connection set-up), so it is created once per worker process and reused by
every turn; the client is thread-safe.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import openai

try:  # the HTTP library under `openai`: httpx2 in recent releases, httpx before
    import httpx2 as _http
except ImportError:  # pragma: no cover - depends on the installed openai
    import httpx as _http  # type: ignore[no-redef]

from common.settings import get_settings

# What the caller may treat as "the LLM failed" (after the client's own retries).
# Errors raised while iterating a stream (a connection that breaks off, a read
# timeout) come unwrapped from the HTTP library.
LLMError: tuple[type[Exception], ...] = (openai.APIError, _http.HTTPError)


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
    """Yield the text deltas of a streamed chat completion."""
    settings = get_settings()
    stream = get_llm_client().chat.completions.create(
        model=settings.llm_model,
        messages=messages,  # type: ignore[arg-type]
        temperature=settings.llm_temperature,
        stream=True,
    )
    with stream:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content


def complete_chat(messages: list[dict[str, str]]) -> str:
    """A whole (non-streamed) chat completion, for short background prompts."""
    settings = get_settings()
    response = get_llm_client().chat.completions.create(
        model=settings.llm_model,
        messages=messages,  # type: ignore[arg-type]
        temperature=settings.llm_temperature,
    )
    return response.choices[0].message.content or ""
