"""A restart policy for the soak's processes: whatever exits is started again.

In production a process manager (systemd, Docker's `restart: always`, Kubernetes) brings
a killed web node or worker back; the soak needs the same, or its first SIGKILL would end
the run. A fault that must keep a process down for a while (the LLM refusing
connections) holds it first.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from devtools.processes import ChildProcess

POLL_S = 0.25
# How long a restart policy waits before starting a process again (systemd's RestartSec).
RESTART_DELAY_S = 1.0


@dataclass
class Restart:
    name: str
    exited_at: float
    restarted_at: float


@dataclass
class Supervisor:
    """Polls each process; one that is not running (and not held) is started again."""

    procs: dict[str, ChildProcess]
    restarts: list[Restart] = field(default_factory=list)
    _held: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (before the processes are stopped for good)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def hold(self, name: str) -> None:
        """Leave `name` down until `release`."""
        with self._lock:
            self._held.add(name)

    def release(self, name: str) -> None:
        with self._lock:
            self._held.discard(name)

    def _run(self) -> None:
        exited: dict[str, float] = {}
        while not self._stop.wait(POLL_S):
            with self._lock:
                held = set(self._held)
            for name, proc in list(self.procs.items()):
                if proc.running() or name in held:
                    exited.pop(name, None)
                    continue
                now = time.monotonic()
                since = exited.setdefault(name, now)
                if now - since < RESTART_DELAY_S:
                    continue
                # The group may still hold a child of the dead leader (gunicorn's
                # worker): clear it before the restart.
                proc.stop()
                proc.start()
                self.restarts.append(Restart(name, since, time.monotonic()))
                exited.pop(name, None)
