"""The worker's LLM client (common/llm/client.py), against the scripted LLM over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from common.llm import get_llm_client, stream_chat
from common.settings import get_settings
from tests.support.stack import start_scripted_llm


@pytest.fixture
def own_llm(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A scripted LLM of this test's own, so that no other client's connections count."""
    process, url = start_scripted_llm({}, run_dir)
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    get_settings.cache_clear()
    get_llm_client.cache_clear()
    yield url
    process.stop()
    monkeypatch.undo()
    get_settings.cache_clear()
    get_llm_client.cache_clear()


def test_streamed_answers_reuse_one_connection_to_the_llm(own_llm):
    def connections() -> int:
        return requests.get(own_llm.removesuffix("/v1") + "/_stats", timeout=5).json()[
            "connections_accepted"
        ]

    before = connections()  # this request's own connection included
    replies = ["First.", "Again.", "Third."]
    answers = [
        "".join(stream_chat([{"role": "user", "content": f"[llm:reply={reply}]"}]))
        for reply in replies
    ]

    assert answers == replies
    assert connections() - before == 2  # one for the three streams, one for this request
