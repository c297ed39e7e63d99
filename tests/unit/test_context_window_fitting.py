"""Counting tokens offline and fitting a conversation into the model's window."""

from __future__ import annotations

import subprocess
import sys

from common.llm.context_window import (
    TokenCounter,
    fit_conversation,
    known_context_window,
)


def message(text: str, role: str = "user") -> dict[str, str]:
    return {"role": role, "content": text}


def test_tokens_are_counted_with_the_encoding_shipped_in_a_package_without_network():
    # No network namespace needed: tiktoken would download to its cache; an empty,
    # unwritable cache directory proves nothing is fetched.
    code = (
        "from common.llm.context_window import TokenCounter;"
        "print(TokenCounter('gpt-4').count('hello world'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={"TIKTOKEN_CACHE_DIR": "/nonexistent", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "2"


def test_a_model_whose_tokenizer_is_unknown_is_counted_conservatively():
    text = "a" * 300
    assert TokenCounter("llama3.1:8b").count(text) >= 100
    assert not TokenCounter("llama3.1:8b").exact


def test_known_models_have_their_window_and_others_128000():
    assert known_context_window("gpt-4o-mini") == 128_000
    assert known_context_window("openai/gpt-4-0613") == 8_192
    assert known_context_window("gpt-4.1-mini") == 1_047_576
    assert known_context_window("mistral-small") == 128_000


def test_the_system_prompt_and_the_message_answered_are_kept_whatever_the_budget():
    counter = TokenCounter("gpt-4")
    system, current = message("You are Mojo.", "system"), message("Hello?")
    history = [message("older " * 50), message("newer " * 50, "assistant")]

    assert fit_conversation(counter, system, history, current, budget=1) == [system, current]


def test_history_is_kept_from_newest_to_oldest_while_it_fits():
    counter = TokenCounter("gpt-4")
    system, current = message("You are Mojo.", "system"), message("Hello?")
    history = [message(f"message {i} " + "x " * 20) for i in range(10)]
    one = counter.count_message(history[0])
    budget = counter.count_prompt([system, current]) + 3 * one

    prompt = fit_conversation(counter, system, history, current, budget)

    assert prompt == [system, *history[-3:], current]
    assert counter.count_prompt(prompt) <= budget


def test_a_text_within_the_limit_is_kept_whole():
    counter = TokenCounter("gpt-4")
    text = "A short request."
    assert counter.truncate(text, counter.count(text)) == text


def test_a_long_text_is_cut_to_its_start_that_fits():
    text = "Dear Sarah, " + "I would like a day off on Friday. " * 500 + "Thanks, Ada — héhé 👋"
    for model in ("gpt-4", "llama3.1:8b"):
        counter = TokenCounter(model)

        cut = counter.truncate(text, 100)

        assert text.startswith(cut)
        assert 90 <= counter.count(cut) <= 100


def test_a_cut_never_leaves_half_a_character():
    text = "👋" * 400  # several tokens per character in cl100k
    counter = TokenCounter("gpt-4")

    cut = counter.truncate(text, 51)

    assert cut == "👋" * len(cut)
    assert counter.count(cut) <= 51
