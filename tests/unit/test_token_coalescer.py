"""TokenCoalescer: the first token at once, then at most one emit per window."""

from __future__ import annotations

import time

from worker.streaming import TokenCoalescer


def test_first_token_is_emitted_at_once():
    sent: list[str] = []
    coalescer = TokenCoalescer(10.0, sent.append)

    coalescer.push("Hel")

    assert sent == ["Hel"]


def test_tokens_within_the_window_are_held_back():
    sent: list[str] = []
    coalescer = TokenCoalescer(10.0, sent.append)

    for text in ("a", "ab", "abc", "abcd"):
        coalescer.push(text)

    assert sent == ["a"]


def test_flush_sends_the_latest_held_back_text():
    sent: list[str] = []
    coalescer = TokenCoalescer(10.0, sent.append)
    for text in ("a", "ab", "abc"):
        coalescer.push(text)

    coalescer.flush()

    assert sent == ["a", "abc"]


def test_flush_sends_nothing_when_nothing_is_held_back():
    sent: list[str] = []
    coalescer = TokenCoalescer(10.0, sent.append)
    coalescer.push("a")

    coalescer.flush()

    assert sent == ["a"]


def test_a_token_after_the_window_is_emitted():
    sent: list[str] = []
    coalescer = TokenCoalescer(0.01, sent.append)
    coalescer.push("a")
    time.sleep(0.02)

    coalescer.push("ab")

    assert sent == ["a", "ab"]


def test_zero_window_emits_every_token():
    sent: list[str] = []
    coalescer = TokenCoalescer(0.0, sent.append)

    for text in ("a", "ab", "abc"):
        coalescer.push(text)

    assert sent == ["a", "ab", "abc"]
