"""Child processes of the test run (web nodes, workers, LLM server), each
logging to its own file and stopped at the end of the run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class ChildProcess:
    """A named command run from the project root with its own process group."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> ChildProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115  (kept open for the child's life)
        self.popen = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
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

    def stop(self, timeout: float = 15.0) -> None:
        if not self.running():
            return
        self.signal_group(signal.SIGTERM)
        try:
            self.popen.wait(timeout)  # type: ignore[union-attr]
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.popen.wait(5)  # type: ignore[union-attr]

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


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def web_node(name: str, port: int, env: dict[str, str], log_dir: Path) -> ChildProcess:
    return ChildProcess(
        name,
        [str(BIN / "gunicorn"), "--config", "web/gunicorn_conf.py", "web.wsgi:app"],
        {**env, "PORT": str(port), "HOST": "127.0.0.1"},
        log_dir,
    )


def celery_worker(
    name: str,
    queues: str,
    env: dict[str, str],
    log_dir: Path,
    concurrency: int = 8,
    beat: bool = False,
) -> ChildProcess:
    """A Celery worker; with `beat`, it also runs the periodic recovery sweep."""
    beat_args = ["-B", "--schedule", str(log_dir / f"{name}-beat-schedule")] if beat else []
    return ChildProcess(
        name,
        [
            str(BIN / "celery"),
            "-A",
            "worker",
            "worker",
            "-Q",
            queues,
            "-P",
            "threads",
            "-c",
            str(concurrency),
            "-n",
            f"{name}@%h",
            "-E",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
            *beat_args,
        ],
        env,
        log_dir,
    )


def scripted_llm(port: int, env: dict[str, str], log_dir: Path) -> ChildProcess:
    return ChildProcess(
        "scripted-llm",
        [sys.executable, "-m", "common.scripted_llm", "--host", "127.0.0.1", "--port", str(port)],
        env,
        log_dir,
    )
