"""Garbage collection in long-running processes: start-up objects kept out of it.

A full collection scans every object the collector tracks, and after start-up a process
holds hundreds of thousands that will never be garbage (the modules of Flask, SQLAlchemy,
Celery, `openai`, pydantic): those scans made the p99 of the time to first token
(docs/performance.md, "Garbage collection freeze"). `gc.freeze()` moves what exists once
the process is ready into the permanent generation, which collections skip; cycles among
new objects are still collected.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Collect the garbage of start-up, then exempt what is left from later collections."""
    gc.collect()
    gc.freeze()
