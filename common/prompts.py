"""Prompts live as Jinja2 templates in common/prompts/, one per kind of turn."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

PROMPTS_DIR = Path(__file__).parent / "prompts"


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(PROMPTS_DIR),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,  # prompts are plain text for a model, not HTML
    )


def render_prompt(name: str, **context: Any) -> str:
    """Render `common/prompts/<name>.j2` with the given context."""
    return _environment().get_template(f"{name}.j2").render(**context).strip()
