"""Child processes of the test run (web nodes, workers, LLM server), each
logging to its own file and stopped at the end of the run."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

from devtools.processes import ChildProcess

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


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
        [sys.executable, "-m", "devtools.scripted_llm", "--host", "127.0.0.1", "--port", str(port)],
        env,
        log_dir,
    )
