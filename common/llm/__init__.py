"""The LLM side: an OpenAI-compatible endpoint through the `openai` package.

`client` builds the process's client and streams chat completions, `errors` says what
counts as a failed call, `reusable_stream` is a workaround of openai's sync `Stream`.
"""

from common.llm.client import (
    ChatStream,
    Usage,
    complete_chat,
    count_tokens,
    delta_content,
    get_llm_client,
    stream_chat,
)
from common.llm.errors import LLMError, is_context_length_exceeded

__all__ = [
    "ChatStream",
    "LLMError",
    "Usage",
    "complete_chat",
    "count_tokens",
    "delta_content",
    "get_llm_client",
    "is_context_length_exceeded",
    "stream_chat",
]
