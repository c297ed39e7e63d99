"""The soak's faults: what each one does to the stack, and a schedule drawn from a seed.

Every kind is a real failure of a real part, on the loopback only:

- `kill_turns`, `kill_delivery`, `kill_beat`, `kill_web`: SIGKILL of the process group
  (the supervisor starts it again a second later, as a restart policy would); `kill_web`
  kills one of the two web nodes, whose clients reconnect to the other;
- `restart_redis`: the embedded Redis stopped, down for a moment, started empty on the
  same port (nothing is persisted: queued tasks are lost, as in a real restart);
- `restart_postgres`: the embedded PostgreSQL stopped (fast shutdown), down for several
  seconds, started again on the same data;
- `llm_refuse`: the scripted LLM's process stopped, so its port refuses connections, for
  a few seconds;
- `llm_stall`: the scripted LLM frozen (SIGSTOP, then SIGCONT): connections are accepted
  by the kernel and streams in flight stop, but nothing answers.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.soak.supervisor import Supervisor
from bench.stack import FullStack
from devtools.embedded import EmbeddedPostgres, EmbeddedRedis

KINDS = (
    "kill_turns",
    "kill_delivery",
    "kill_beat",
    "kill_web",
    "restart_redis",
    "restart_postgres",
    "llm_refuse",
    "llm_stall",
)


@dataclass(frozen=True)
class Durations:
    """How long each outage lasts, in seconds."""

    redis_down_s: float = 2.0
    postgres_down_s: float = 6.0
    llm_refuse_s: float = 4.0
    llm_stall_s: float = 8.0


@dataclass
class PlannedFault:
    kind: str
    at_s: float  # from the start of the load
    target: str = ""  # which web node, for kill_web


@dataclass
class FaultRecord:
    kind: str
    target: str
    started_at: float  # wall clock
    ended_at: float  # the part is back (or restarted by the supervisor, for kills)
    detail: str = ""


def schedule(
    seed: int,
    load_s: float,
    kinds: tuple[str, ...] = KINDS,
    repeats: int = 2,
    warm_up_s: float = 20.0,
    tail_s: float = 40.0,
    web_nodes: tuple[str, ...] = ("web", "web2"),
) -> list[PlannedFault]:
    """Each kind `repeats` times, in an order and at times drawn from `seed`, spread
    between `warm_up_s` and `load_s - tail_s` (the tail leaves the last fault time to be
    recovered from under load)."""
    rng = random.Random(seed)
    faults = [kind for kind in kinds for _ in range(repeats)]
    rng.shuffle(faults)
    span = max(1.0, load_s - warm_up_s - tail_s)
    slot = span / max(1, len(faults))
    planned = []
    for i, kind in enumerate(faults):
        at = warm_up_s + slot * i + rng.uniform(0, 0.3 * slot)
        target = rng.choice(web_nodes) if kind == "kill_web" else ""
        planned.append(PlannedFault(kind, round(at, 2), target))
    return planned


class Injector:
    """Does each fault to the running stack; blocking, meant for the main thread (the
    embedded servers it restarts are tied to it, see devtools/embedded.py)."""

    def __init__(self, stack: FullStack, supervisor: Supervisor, durations: Durations):
        self.stack = stack
        self.supervisor = supervisor
        self.durations = durations

    def _server(self, kind: type) -> EmbeddedPostgres | EmbeddedRedis:
        return next(s for s in self.stack.servers if isinstance(s, kind))

    def inject(self, fault: PlannedFault) -> FaultRecord:
        action: dict[str, Callable[[PlannedFault], str]] = {
            "kill_turns": lambda f: self._kill("turns"),
            "kill_delivery": lambda f: self._kill("delivery"),
            "kill_beat": lambda f: self._kill("beat"),
            "kill_web": lambda f: self._kill(f.target),
            "restart_redis": lambda f: self._restart_redis(),
            "restart_postgres": lambda f: self._restart_postgres(),
            "llm_refuse": lambda f: self._llm_refuse(),
            "llm_stall": lambda f: self._llm_stall(),
        }
        started = time.time()
        detail = action[fault.kind](fault)
        return FaultRecord(fault.kind, fault.target, started, time.time(), detail)

    def _kill(self, name: str) -> str:
        proc = self.stack.procs[name]
        pid = proc.pid
        proc.signal_group(signal.SIGKILL)
        # Back when the supervisor has started it again.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not proc.running() or proc.pid == pid):
            time.sleep(0.1)
        return f"SIGKILL pid {pid}; restarted as {proc.pid}"

    def _restart_redis(self) -> str:
        redis_server = self._server(EmbeddedRedis)
        redis_server.stop()
        time.sleep(self.durations.redis_down_s)
        redis_server.start()
        return f"down {self.durations.redis_down_s:g} s"

    def _restart_postgres(self) -> str:
        postgres = self._server(EmbeddedPostgres)
        postgres.stop()
        time.sleep(self.durations.postgres_down_s)
        postgres.start()
        return f"down {self.durations.postgres_down_s:g} s"

    def _llm_refuse(self) -> str:
        llm = self.stack.procs["llm"]
        self.supervisor.hold("llm")
        try:
            llm.stop(timeout=3)
            time.sleep(self.durations.llm_refuse_s)
        finally:
            self.supervisor.release("llm")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not llm.running():
            time.sleep(0.1)
        return f"refused connections {self.durations.llm_refuse_s:g} s"

    def _llm_stall(self) -> str:
        llm = self.stack.procs["llm"]
        llm.signal_group(signal.SIGSTOP)
        try:
            time.sleep(self.durations.llm_stall_s)
        finally:
            llm.signal_group(signal.SIGCONT)
        return f"stalled {self.durations.llm_stall_s:g} s"
