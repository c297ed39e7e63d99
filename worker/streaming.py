"""Coalescing of streamed tokens into `mojo_token` emits.

`mojo_token` carries the whole text so far, so one emit per model token
costs O(n^2) bytes per answer (docs/performance.md, "Token coalescing"). The
first token goes out at once (it is what the user waits for); after that at
most one emit per window.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenCoalescer:
    """Calls `emit(text_so_far)` at most once per `interval_s`, first at once."""

    def __init__(self, interval_s: float, emit: Callable[[str], None]):
        self._interval_s = interval_s
        self._emit = emit
        self._last_emit_at: float | None = None
        self._pending: str | None = None
        self.emits = 0

    def push(self, text_so_far: str) -> None:
        now = time.monotonic()
        if self._last_emit_at is None or now - self._last_emit_at >= self._interval_s:
            self._send(text_so_far, now)
        else:
            self._pending = text_so_far

    def flush(self) -> None:
        """Send what is still held back, so the last emit has the full text."""
        if self._pending is not None:
            self._send(self._pending, time.monotonic())

    def _send(self, text: str, now: float) -> None:
        self._emit(text)
        self._last_emit_at = now
        self._pending = None
        self.emits += 1
