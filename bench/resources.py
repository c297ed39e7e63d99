"""The CPU seconds and peak memory of a benchmark's processes.

Every process is a devtools/processes.py `ChildProcess.shell`: started the way honcho
starts it under `make run` (a shell line that `exec`s the program), in its own process
group, logging to a file. A `ResourceMonitor`
samples the resident memory of each watched process tree a few times a second and reads
CPU times at the edges of a measurement window.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

MB = 1024 * 1024


def _tree(process: psutil.Process) -> list[psutil.Process]:
    if getattr(process, "bench_alone", False):
        return [process]
    try:
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return []


def tree_cpu_seconds(process: psutil.Process) -> float:
    """User + system CPU seconds of a process and its live descendants."""
    total = 0.0
    for member in _tree(process):
        with contextlib.suppress(psutil.Error):
            times = member.cpu_times()
            total += times.user + times.system
    return total


def tree_memory_mb(process: psutil.Process) -> dict[str, float]:
    """RSS of each process of a tree, and their PSS summed (shared pages counted once)."""
    out: dict[str, float] = {}
    pss = 0
    for member in _tree(process):
        with contextlib.suppress(psutil.Error):
            info = member.memory_full_info()
            out[f"rss_{member.pid}"] = round(info.rss / MB, 1)
            pss += getattr(info, "pss", info.rss)
    out["pss_total"] = round(pss / MB, 1)
    return out


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of a process and its live descendants."""
    total = 0
    for member in _tree(process):
        with contextlib.suppress(psutil.Error):
            total += member.memory_info().rss
    return total


@dataclass
class Window:
    """One measurement window: CPU seconds used and peak RSS of each watched tree."""

    started_at: float
    cpu_at_start: dict[str, float]
    peak_rss: dict[str, int] = field(default_factory=dict)
    ended_at: float | None = None
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def wall_s(self) -> float:
        return (self.ended_at or time.monotonic()) - self.started_at

    def as_dict(self) -> dict[str, Any]:
        """Per process: CPU seconds, CPU share of one core, peak RSS in MB."""
        wall = self.wall_s
        return {
            name: {
                "cpu_s": round(cpu, 3),
                "cpu_cores": round(cpu / wall, 3) if wall > 0 else None,
                "peak_rss_mb": round(self.peak_rss.get(name, 0) / MB, 1),
            }
            for name, cpu in self.cpu_seconds.items()
        }


class ResourceMonitor:
    """Samples the RSS of named process trees every `interval_s` in a daemon thread."""

    def __init__(self, interval_s: float = 0.2):
        self.interval_s = interval_s
        self._processes: dict[str, psutil.Process] = {}
        self._windows: list[Window] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_forever, daemon=True)
        self._thread.start()

    def watch(self, name: str, pid: int, tree: bool = True) -> None:
        """Measure process `pid`, with its descendants unless `tree` is False."""
        process = psutil.Process(pid)
        process.bench_alone = not tree  # type: ignore[attr-defined]
        with self._lock:
            self._processes[name] = process

    def unwatch(self, name: str) -> None:
        with self._lock:
            self._processes.pop(name, None)

    def memory_mb(self, name: str) -> dict[str, float]:
        with self._lock:
            process = self._processes[name]
        return tree_memory_mb(process)

    def rss_mb(self, name: str) -> float:
        with self._lock:
            process = self._processes[name]
        return round(tree_rss(process) / MB, 1)

    def _cpu(self) -> dict[str, float]:
        with self._lock:
            processes = dict(self._processes)
        return {name: tree_cpu_seconds(p) for name, p in processes.items()}

    def start_window(self) -> Window:
        window = Window(time.monotonic(), self._cpu())
        self._sample_into([window])
        with self._lock:
            self._windows.append(window)
        return window

    def end_window(self, window: Window) -> Window:
        self._sample_into([window])
        with self._lock:
            if window in self._windows:
                self._windows.remove(window)
        window.ended_at = time.monotonic()
        cpu = self._cpu()
        window.cpu_seconds = {
            name: max(0.0, cpu[name] - window.cpu_at_start.get(name, 0.0)) for name in cpu
        }
        return window

    def _sample_into(self, windows: list[Window]) -> None:
        with self._lock:
            processes = dict(self._processes)
        rss = {name: tree_rss(p) for name, p in processes.items()}
        for window in windows:
            for name, value in rss.items():
                window.peak_rss[name] = max(window.peak_rss.get(name, 0), value)

    def _sample_forever(self) -> None:
        while not self._stop.wait(self.interval_s):
            with self._lock:
                windows = list(self._windows)
            if windows:
                self._sample_into(windows)

    def close(self) -> None:
        self._stop.set()


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_calibration() -> dict[str, float]:
    """How fast this machine runs Python now: ms of CPU and of wall time for a fixed loop
    (sum(range(10**6))), so that runs on a busy or a quiet machine can be compared."""
    cpu, wall = [], []
    for _ in range(10):
        started_cpu, started = time.process_time(), time.perf_counter()
        sum(range(10**6))
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started)
    return {
        "cpu_ms": round(1000 * sorted(cpu)[len(cpu) // 2], 2),
        "wall_ms": round(1000 * sorted(wall)[len(wall) // 2], 2),
    }
