"""TokenCoalescer: the first token at once, then at most one emit per window, a window
that widens with the text's length up to a maximum."""

from __future__ import annotations

import time

import pytest

from worker.streaming import WIDENING_S_PER_CHAR, TokenCoalescer, emit_interval_s


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


# The window widens with the text so far: long answers cost about their length times
# their seconds in bytes, not the square of their length (docs/performance.md).


def test_the_window_starts_at_the_minimum_for_short_text():
    assert emit_interval_s(0, 0.05, 0.5) == 0.05
    assert emit_interval_s(10, 0.05, 0.5) == 0.05


def test_the_window_grows_with_the_length_of_the_text():
    widths = [emit_interval_s(n, 0.05, 0.5) for n in (25, 50, 100, 200)]

    assert widths == sorted(widths)
    assert widths[0] < widths[-1]
    assert emit_interval_s(100, 0.05, 0.5) == pytest.approx(100 * WIDENING_S_PER_CHAR)


def test_the_window_never_exceeds_the_maximum():
    assert emit_interval_s(250, 0.05, 0.5) == pytest.approx(0.5)
    assert emit_interval_s(16_000, 0.05, 0.5) == 0.5
    assert emit_interval_s(10**9, 0.05, 0.5) == 0.5


def test_a_maximum_not_above_the_minimum_means_a_fixed_window():
    assert emit_interval_s(0, 0.05, 0.05) == 0.05
    assert emit_interval_s(16_000, 0.05, 0.05) == 0.05
    assert emit_interval_s(16_000, 0.05, 0.0) == 0.05


def test_a_long_text_is_held_back_longer_than_a_short_one():
    sent: list[str] = []
    coalescer = TokenCoalescer(0.01, sent.append, max_interval_s=10.0)
    coalescer.push("a")
    time.sleep(0.02)
    coalescer.push("a" * 1000)  # 10 ms after "a": sent; its window is now 2 s
    time.sleep(0.02)

    coalescer.push("a" * 1001)

    assert [len(text) for text in sent] == [1, 1000]


def test_the_window_of_a_draft_counts_the_title_and_the_draft():
    sent: list[tuple[str, str]] = []
    coalescer = TokenCoalescer(
        0.01, sent.append, max_interval_s=10.0, length=lambda s: len(s[0]) + len(s[1])
    )
    coalescer.push(("t" * 500, "d" * 500))
    time.sleep(0.02)

    coalescer.push(("t" * 500, "d" * 501))

    assert len(sent) == 1
