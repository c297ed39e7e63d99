"""The LLM providers a turn may use: the primary (OPENAI_*, LLM_MODEL) and an optional
fallback (LLM_FALLBACK_*), and which failures are the provider's outage rather than the
request's fault."""

from __future__ import annotations

from dataclasses import dataclass

import openai

from common.llm.errors import _http
from common.settings import get_settings


@dataclass(frozen=True)
class Provider:
    name: str  # "primary" or "fallback": labels in logs, /health and /metrics
    base_url: str | None
    api_key: str | None
    model: str


def primary_provider() -> Provider:
    settings = get_settings()
    return Provider(
        "primary", settings.openai_base_url, settings.openai_api_key, settings.llm_model
    )


def fallback_provider() -> Provider | None:
    """The backup provider, if one is configured; its unset parts are the primary's."""
    settings = get_settings()
    if not settings.llm_fallback_enabled:
        return None
    return Provider(
        "fallback",
        settings.llm_fallback_base_url or settings.openai_base_url,
        settings.llm_fallback_api_key or settings.openai_api_key,
        settings.llm_fallback_model or settings.llm_model,
    )


def is_outage(error: BaseException) -> bool:
    """Whether `error` says the provider cannot serve now (connection refused or reset,
    timeout, 5xx, 429), as opposed to refusing this request (400, 401, 404...)."""
    if isinstance(error, openai.APIStatusError):
        return error.status_code >= 500 or error.status_code == 429
    return isinstance(error, (openai.APIConnectionError, _http.TransportError))
