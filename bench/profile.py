"""Sampling profiles of the stack's processes with py-spy, summarised as the functions
where the CPU time goes (self time at the leaf, and time including callees)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    found = Path(sys.executable).parent / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy")


def start(pid: int, seconds: float, out: Path, rate: int = 200) -> subprocess.Popen[bytes] | None:
    """py-spy record of `pid` for `seconds`, collapsed stacks into `out`; None without py-spy."""
    binary = py_spy()
    if binary is None:
        return None
    return subprocess.Popen(
        [
            binary,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
            # Only the thread holding the GIL: where the CPU goes, not where threads wait
            # (a threads-pool worker has dozens waiting on sockets at any time).
            "--gil",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _frame_name(frame: str) -> str:
    """'function (path/to/file.py:123)' -> 'function (file.py)'."""
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rsplit("/", 2)
    short = "/".join(file[-2:]) if len(file) > 1 else file[0]
    return f"{name} ({short.rstrip(')')})"


def summarise(path: Path, top: int = 15) -> dict[str, Any]:
    """Top functions by self samples and by inclusive samples, in % of all samples."""
    if not path.exists():
        return {"samples": 0, "self": [], "inclusive": []}
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def share(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(top)]

    return (
        {"samples": total, "self": share(own), "inclusive": share(inclusive)}
        if total
        else {
            "samples": 0,
            "self": [],
            "inclusive": [],
        }
    )
