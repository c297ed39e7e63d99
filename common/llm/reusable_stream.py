"""openai's sync `Stream`, reading the response body to its end at `[DONE]`.

Why: openai 1.x-3.x's sync `Stream` closes the response at `[DONE]` with the chunked
body's last bytes unread, so the connection cannot go back to the pool and every turn
opened a new TCP connection to the LLM. It can go when the sync `Stream` drains the body
as the async one does (docs/performance.md, "LLM connections").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai

from common.llm.errors import LLMError


class ReusableStream(openai.Stream[object]):
    """openai's sync `Stream`, reading the body to its end at `[DONE]` so that the HTTP/1.1
    connection can go back to the pool. Nothing is expected after `[DONE]`: what comes is
    discarded, and a failure while draining does not fail the finished answer. Events
    without data (keep-alives some servers send) are skipped: openai would parse them as
    JSON and fail."""

    def _iter_events(self) -> Iterator[Any]:
        events = super()._iter_events()
        for sse in events:
            if not sse.data.strip():
                # A keep-alive event with no data (`event: ping`): nothing to parse.
                continue
            if sse.data.startswith("[DONE]"):
                try:
                    for _ in events:
                        pass
                except LLMError:
                    pass
            yield sse
