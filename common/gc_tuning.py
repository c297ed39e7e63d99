"""Garbage collection in long-running processes: no pause of 100 ms on a token's path.

A full collection scans every object the collector tracks. After start-up a web node or
a worker holds hundreds of thousands of them (the modules of Flask, SQLAlchemy, Celery,
`openai`, pydantic), none of which will ever be garbage; scanning them took 60-220 ms per
full collection in `make bench` (gc callbacks in each process), and those pauses made the
p99 of the time to first token. `gc.freeze()` moves what exists once the process is ready
into the permanent generation, which collections skip: they then scan only what was
made since, and cycles among new objects are still collected.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Collect the garbage of start-up, then exempt what is left from later collections."""
    gc.collect()
    gc.freeze()
