"""What a caller may treat as "the LLM failed", after the client's own retries."""

from __future__ import annotations

import openai

try:  # the HTTP library under `openai`: httpx2 in recent releases, httpx before
    import httpx2 as _http
except ImportError:  # pragma: no cover - depends on the installed openai
    import httpx as _http  # type: ignore[no-redef]

# Errors raised while iterating a stream (a connection that breaks off, a read timeout)
# come unwrapped from the HTTP library.
LLMError: tuple[type[Exception], ...] = (openai.APIError, _http.HTTPError)


def is_context_length_exceeded(error: BaseException) -> bool:
    """Whether the provider refused the request as longer than the model's window (OpenAI's
    400 `context_length_exceeded`; some OpenAI-compatible servers only say it in words)."""
    if not isinstance(error, openai.BadRequestError):
        return False
    if getattr(error, "code", None) == "context_length_exceeded":
        return True
    # vLLM: "maximum context length"; llama.cpp: "exceeds the available context size".
    text = str(error).lower()
    return any(words in text for words in ("context length", "context size", "context window"))
