"""Which provider answers an LLM call: the primary, or the fallback (LLM_FALLBACK_*) when
the primary has an outage before it answered or its breaker is open. Turns, titles and
todo extraction all ask through here, so a primary outage costs none of them their answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from common import metrics
from common.llm import breaker
from common.llm.client import Usage, complete_chat
from common.llm.errors import LLMError
from common.llm.providers import Provider, fallback_provider, is_outage, primary_provider

log = logging.getLogger(__name__)

T = TypeVar("T")


def call_with_fallback(
    call: Callable[[Provider], T],
    kind: str,
    may_switch: Callable[[], bool] = lambda: True,
) -> T:
    """`call(primary)`; without a fallback that is all. With one: `call(fallback)` instead
    when the primary's breaker is open, or at once after the primary failed for an outage
    (refused, reset, timeout, 5xx, 429) if `may_switch()` still allows it (a turn stops
    allowing it once the user saw a token). Other failures propagate, for the caller's
    retry. `kind` ("turn", "title", "todos") labels the logs and metrics."""
    primary = primary_provider()
    fallback = fallback_provider()
    if fallback is None:
        return call(primary)
    if breaker.state(primary.name) == breaker.OPEN:
        log.info("%s: primary LLM skipped (breaker open)", kind)
        metrics.increment("llm_fallback_calls", kind=kind)
        return call(fallback)
    try:
        result = call(primary)
    except LLMError as exc:
        if not may_switch() or not is_outage(exc):
            raise
        breaker.record_failure(primary.name)
        log.warning(
            "%s: primary LLM failed before answering (%s: %s); the fallback answers",
            kind,
            type(exc).__name__,
            exc,
        )
        metrics.increment("llm_fallback_calls", kind=kind)
        return call(fallback)
    breaker.record_success(primary.name)
    return result


def complete_prompt(prompt: str, kind: str) -> tuple[str, Usage, int]:
    """A short background prompt (a title, a draft's todos) answered whole, by the primary
    or the fallback: the text, what it cost, and how long it took in ms. An LLMError
    propagates, for the task's retry."""
    started = time.monotonic()
    text, usage = call_with_fallback(
        lambda provider: complete_chat([{"role": "user", "content": prompt}], provider),
        kind=kind,
    )
    return text, usage, round((time.monotonic() - started) * 1000)
