"""A provider that answers 429 or 503 with `Retry-After` is asked again after the wait it
asked for, not after the fixed backoff (LLM_RETRY_BACKOFF_S is 0.2 s in the tests)."""

from __future__ import annotations

import time

import pytest

WAIT_S = 2


@pytest.mark.parametrize("status", [429, 503], ids=["rate-limited", "overloaded"])
def test_a_refusal_with_retry_after_is_retried_after_the_wait_the_provider_asked_for(
    api, user, session_id, connect, status
):
    client = connect(user, session_id)
    sent_at = time.monotonic()

    api.send_message(
        user,
        session_id,
        f"Busy? [llm:fail_first=1] [llm:fail_status={status}] [llm:retry_after={WAIT_S}]"
        " [llm:reply=Answered after the wait.]",
    )

    message = client.wait_for("mojo_message", timeout=20)
    waited = time.monotonic() - sent_at
    assert message["text"] == "Answered after the wait."
    assert WAIT_S <= waited < WAIT_S + 3
    assert client.events("error") == []
