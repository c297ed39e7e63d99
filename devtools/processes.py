"""Child processes in process groups of their own, logging to files: how the test suite,
the benchmark and the compose test start web nodes, workers and the LLM server, and stop
them."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class ChildProcess:
    """A named command run from the project root, in a process group of its own so that
    a signal reaches its children too (gunicorn's workers, a celery beat)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    @classmethod
    def shell(cls, name: str, command: str, env: dict[str, str], log_dir: Path) -> ChildProcess:
        """A shell line, as honcho runs each line of `make run` (`exec program ...`)."""
        return cls(name, ["/bin/sh", "-c", command], env, log_dir)

    @property
    def command(self) -> str:
        """The command line as one would type it (a shell line as written)."""
        if self.argv[:2] == ["/bin/sh", "-c"]:
            return self.argv[2]
        return shlex.join(self.argv)

    def start(self) -> ChildProcess:
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_group(self, sig: signal.Signals) -> None:
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, sig)

    def terminate(self) -> None:
        """SIGTERM the process group: a clean stop, as honcho or `docker stop` asks."""
        self.signal_group(signal.SIGTERM)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group; SIGKILL it if it is still there after `timeout`."""
        if self.popen is None:
            return
        if self.running():
            self.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.popen.wait(5)
        # A gunicorn worker or a celery child may outlive its leader for a moment.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def kill(self) -> None:
        """SIGKILL the whole group at once: no chance to clean up."""
        self.signal_group(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def stop_all(procs: list[ChildProcess], timeout: float = 15.0) -> dict[str, float]:
    """Stop processes together: SIGTERM to all first, then wait for each. Returns how long
    each took to exit, counted from the SIGTERM."""
    started = time.monotonic()
    for proc in procs:
        proc.terminate()
    took = {}
    for proc in procs:
        proc.stop(max(0.1, timeout - (time.monotonic() - started)))
        took[proc.name] = round(time.monotonic() - started, 2)
    return took
