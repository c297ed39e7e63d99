"""The processes under test.

`FullStack` is the stack of `make run`: devtools/devstack.py prepares it (embedded PostgreSQL
and Redis under a temporary DATA_DIR unless URLs are given, the scripted LLM, migrations,
the demo seed) and gives the very command lines honcho would run (web, turns, delivery,
beat, flower, llm); they run here as our own children, so that each one's CPU and memory
can be measured by pid.

`MinimalStack` runs bench/minimal_pipeline.py's web node and worker, on the same Redis
(another database number) and the same scripted LLM.
"""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from common.settings import Settings
from devtools import devstack
from devtools.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from devtools.processes import ChildProcess, stop_all

# Settings of the developer's shell that must not leak into the stack under test.
SCRUBBED = (*devstack.SERVICE_VARIABLES, "PORT", "HOST")
# The load generator registers and sends far more than any one person, all from 127.0.0.1:
# limits no run reaches. (An empty variable counts as unset, i.e. the default limit.) The
# limiter still counts in Redis, as it does in production.
GENEROUS_RATE_LIMITS = {
    "LOGIN_RATE_LIMIT": "1000000/minute",
    "REGISTER_RATE_LIMIT": "1000000/minute",
    "MESSAGE_RATE_LIMIT": "1000000/minute",
    "MESSAGE_ADDRESS_RATE_LIMIT": "1000000/minute",
}


def wait_for(url: str, timeout: float, what: str, procs: list[ChildProcess]) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        for proc in procs:
            if not proc.running():
                raise RuntimeError(f"{proc.name} exited while starting:\n{proc.log_tail()}")
        try:
            response = requests.get(url, timeout=3)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:300]}"
        except requests.RequestException as exc:
            last = str(exc)
        time.sleep(0.3)
    tails = "\n".join(f"--- {p.name}\n{p.log_tail()}" for p in procs)
    raise RuntimeError(f"{what} not ready within {timeout:g} s ({last}):\n{tails}")


@dataclass
class FullStack:
    env: dict[str, str]
    procs: dict[str, ChildProcess]
    servers: list[EmbeddedPostgres | EmbeddedRedis]
    base_url: str
    llm_base_url: str

    @property
    def llm_root(self) -> str:
        return self.llm_base_url.removesuffix("/v1")

    @property
    def redis_url(self) -> str:
        return self.env["REDIS_URL"]

    @property
    def database_url(self) -> str:
        return self.env["DATABASE_URL"]

    def server_pids(self) -> dict[str, int]:
        pids = {}
        for server in self.servers:
            if server.pid is not None:
                pids["postgres" if isinstance(server, EmbeddedPostgres) else "redis"] = server.pid
        return pids

    def stop(self) -> None:
        stop_all(list(self.procs.values()))
        for server in reversed(self.servers):
            server.stop()


def start_full_stack(
    work_dir: Path,
    settings_env: dict[str, str],
    database_url: str | None = None,
    redis_url: str | None = None,
) -> FullStack:
    """Start the `make run` stack with `settings_env` on top of this process's environment.

    This process's own environment becomes the stack's (the bench process is dedicated to
    the run), so that code imported here later (Celery's app, the database) sees it too.
    """
    for name in SCRUBBED:
        os.environ.pop(name, None)
    os.environ.update(
        DATA_DIR=str(work_dir / "data"),
        HOST="127.0.0.1",
        PORT=str(free_port()),
        **GENEROUS_RATE_LIMITS,
        **settings_env,
    )
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    servers: list[EmbeddedPostgres | EmbeddedRedis] = []
    procs: dict[str, ChildProcess] = {}
    log_dir = work_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        plan = devstack.prepare_stack(Settings(), servers, preferred_ports=False)
        os.environ.update(plan.env)
        for name, command in plan.commands.items():
            procs[name] = ChildProcess.shell(name, command, plan.env, log_dir).start()
        stack = FullStack(plan.env, procs, servers, plan.urls["API"], plan.env["OPENAI_BASE_URL"])
        wait_for(stack.base_url + "/health", 90, "the stack", list(procs.values()))
        wait_for(stack.llm_root + "/health", 30, "the scripted LLM", list(procs.values()))
        return stack
    except BaseException:
        for proc in reversed(list(procs.values())):
            proc.stop()
        for server in reversed(servers):
            server.stop()
        raise


@dataclass
class MinimalStack:
    procs: dict[str, ChildProcess] = field(default_factory=dict)
    base_url: str = ""

    def stop(self) -> None:
        stop_all(list(self.procs.values()))


def start_minimal_stack(full: FullStack, work_dir: Path, concurrency: int) -> MinimalStack:
    """The minimal pipeline's web node and worker, on the full stack's Redis and LLM."""
    bin_dir = Path(devstack.BIN)
    redis_url = full.redis_url.rsplit("/", 1)[0] + "/1"
    port = free_port()
    env = {
        **full.env,
        "MINIMAL_REDIS_URL": redis_url,
        "PYTHONPATH": str(devstack.ROOT),
    }
    gunicorn = shlex.quote(str(bin_dir / "gunicorn"))
    celery = shlex.quote(str(bin_dir / "celery"))
    commands = {
        "minimal-web": f"exec {gunicorn} -k gevent -w 1 --worker-connections 4000"
        f" -b 127.0.0.1:{port} --keep-alive 75 --log-level warning"
        " 'bench.minimal_pipeline:create_web_app()'",
        "minimal-worker": f"exec {celery} -A bench.minimal_pipeline worker -P threads"
        f" -c {concurrency} -Q bench-minimal --without-gossip --without-mingle"
        " --loglevel WARNING -n minimal@%h",
    }
    log_dir = work_dir / "logs"
    stack = MinimalStack(base_url=f"http://127.0.0.1:{port}")
    try:
        for name, command in commands.items():
            stack.procs[name] = ChildProcess.shell(name, command, env, log_dir).start()
        wait_for(stack.base_url + "/health", 60, "the minimal pipeline", list(stack.procs.values()))
        return stack
    except BaseException:
        stack.stop()
        raise
