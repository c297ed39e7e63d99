"""Coalescing of streamed tokens into `mojo_token` (and `draft_token`) emits.

`mojo_token` carries the whole text so far, so one emit per model token costs O(n^2)
bytes per answer, and so does a fixed window: a 4,000-character answer streamed over 25 s
every 50 ms is about 1 MB (docs/performance.md, "Token coalescing"). The first token goes
out at once (it is what the user waits for); after that the window widens with the
length of the text, from `min_interval_s` up to `max_interval_s` (500 ms by default):
early updates stay quick and cheap, and a long answer costs about its length times its
duration in seconds (one update per 500 ms, each the whole text), not 20 times that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

# Window in seconds per character of text, until `max_interval_s`: 2 ms per character
# reaches 500 ms at 250 characters (about 1.5 s of a model's answer), and holds the
# bytes sent per second below ~500 until then.
WIDENING_S_PER_CHAR = 0.002


def emit_interval_s(length: int, min_interval_s: float, max_interval_s: float) -> float:
    """How long to hold back the next emit once `length` characters have been sent.

    Grows linearly with the length, never below `min_interval_s` nor above
    `max_interval_s` (when `max_interval_s` <= `min_interval_s` the window is fixed).
    """
    if max_interval_s <= min_interval_s:
        return min_interval_s
    return min(max_interval_s, max(min_interval_s, length * WIDENING_S_PER_CHAR))


class TokenCoalescer(Generic[T]):
    """Calls `emit(value)` first at once, then at most once per widening window.

    `value` is the whole text so far (or a draft's state); `length(value)` is how many
    characters one emit of it carries.
    """

    def __init__(
        self,
        interval_s: float,
        emit: Callable[[T], None],
        max_interval_s: float | None = None,
        length: Callable[[T], int] = len,  # type: ignore[assignment]
    ):
        self._min_interval_s = interval_s
        self._max_interval_s = interval_s if max_interval_s is None else max_interval_s
        self._emit = emit
        self._length = length
        self._last_emit_at: float | None = None
        self._window_s = interval_s
        self._pending: T | None = None
        self.emits = 0

    def push(self, value: T) -> None:
        now = time.monotonic()
        if self._last_emit_at is None or now - self._last_emit_at >= self._window_s:
            self._send(value, now)
        else:
            self._pending = value

    def flush(self) -> None:
        """Send what is still held back, so the last emit has the full text."""
        if self._pending is not None:
            self._send(self._pending, time.monotonic())

    def _send(self, value: T, now: float) -> None:
        self._emit(value)
        self._last_emit_at = now
        self._window_s = emit_interval_s(
            self._length(value), self._min_interval_s, self._max_interval_s
        )
        self._pending = None
        self.emits += 1
