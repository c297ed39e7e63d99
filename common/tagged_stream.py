"""Streaming parser for the model's tagged output in task turns.

In a task session the model either talks to the user, or writes the result
inside tags: `<execution><title>…</title><draft>…</draft></execution>`.
While it streams, the text outside `<execution>` goes to the user as
`mojo_token`, and what is inside becomes `draft_token` (title and draft parsed
so far). Tags may be split across chunks and the closing tags may never come.

The parser re-reads the whole text at each chunk: answers are a few KB, so
this costs microseconds, and it makes every state a pure function of the text
received so far (what the property tests check). While streaming, a suffix
that could be the start of a tag is held back, so nothing sent to a client
ever has to be taken back: each state's texts are prefixes of the next's.
"""

from __future__ import annotations

from dataclasses import dataclass

EXECUTION_OPEN, EXECUTION_CLOSE = "<execution>", "</execution>"
TITLE_OPEN, TITLE_CLOSE = "<title>", "</title>"
DRAFT_OPEN, DRAFT_CLOSE = "<draft>", "</draft>"


@dataclass(frozen=True)
class TaggedText:
    """What the text received so far says."""

    outside: str  # for the user (mojo_token / the message text), tags excluded
    title: str
    draft: str
    has_execution: bool  # an <execution> tag was opened


def _hold_back(text: str, *tags: str) -> str:
    """`text` without a trailing partial tag (e.g. "<exec"), which the next
    chunk may complete."""
    longest = 0
    for tag in tags:
        for size in range(min(len(tag) - 1, len(text)), longest, -1):
            if text.endswith(tag[:size]):
                longest = size
                break
    return text[: len(text) - longest] if longest else text


def _between(text: str, open_tag: str, close_tag: str, final: bool) -> str:
    """The content of the first `open_tag`…`close_tag` in `text`, or what has
    arrived of it when the closing tag has not (yet)."""
    start = text.find(open_tag)
    if start < 0:
        return ""
    content = text[start + len(open_tag) :]
    end = content.find(close_tag)
    if end >= 0:
        return content[:end]
    return content if final else _hold_back(content, close_tag)


def parse_tagged(text: str, final: bool = False) -> TaggedText:
    """Parse `text`; `final` when the stream has ended (nothing is held back
    and missing closing tags are tolerated)."""
    start = text.find(EXECUTION_OPEN)
    if start < 0:
        outside = text if final else _hold_back(text, EXECUTION_OPEN)
        return TaggedText(outside=outside, title="", draft="", has_execution=False)
    before = text[:start]
    inner = text[start + len(EXECUTION_OPEN) :]
    end = inner.find(EXECUTION_CLOSE)
    after = ""
    if end >= 0:
        inner, after = inner[:end], inner[end + len(EXECUTION_CLOSE) :]
    elif not final:
        inner = _hold_back(inner, EXECUTION_CLOSE)
    title = _between(inner, TITLE_OPEN, TITLE_CLOSE, final or end >= 0)
    draft = _between(inner, DRAFT_OPEN, DRAFT_CLOSE, final or end >= 0)
    return TaggedText(outside=before + after, title=title.strip(), draft=draft, has_execution=True)


class TaggedStreamParser:
    """Feed chunks as they arrive; read the state after each."""

    def __init__(self) -> None:
        self.raw = ""

    def feed(self, chunk: str) -> TaggedText:
        self.raw += chunk
        return parse_tagged(self.raw)

    def finish(self) -> TaggedText:
        return parse_tagged(self.raw, final=True)
