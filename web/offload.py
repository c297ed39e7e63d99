"""CPU-bound work off a web node's event loop.

A web node is one gevent loop: a call that computes without yielding (hashing a password
with scrypt, at registration and at each login) holds every request and Socket.IO
connection of the node meanwhile, streams included (docs/performance.md, "Password
hashing off the loop"). Such work runs in gevent's pool of native threads instead:
hashlib releases the GIL while it hashes, so the loop goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def on_gevent_loop() -> bool:
    """Whether this process runs a gevent loop (gunicorn's gevent worker monkey-patches
    before it loads the app)."""
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return False
    return monkey.is_module_patched("socket")


def off_loop(work: Callable[..., T], *args: object) -> T:
    """`work(*args)`, computed in a native thread when this process runs a gevent loop;
    the calling greenlet waits for it, the others run. Called directly otherwise (a
    threaded server or a test client: the request already has a thread of its own)."""
    if not on_gevent_loop():
        return work(*args)
    import gevent

    return gevent.get_hub().threadpool.apply(work, args)
