"""`make run`: the whole System1 stack on one machine that has nothing but Python.

What is not configured is provided, so a fresh clone runs with no setup:

- no DATABASE_URL: an embedded PostgreSQL under DATA_DIR/postgres, database `system1`;
- no REDIS_URL: an embedded Redis under DATA_DIR/redis (it also serves as Celery broker);
- neither OPENAI_API_KEY nor OPENAI_BASE_URL: the offline scripted LLM.

Then migrations and the demo seed run, and honcho supervises the web node, both Celery
workers, Flower and the scripted LLM. honcho stops everything when one process dies or on
Ctrl-C/SIGTERM; the embedded servers are stopped last, after the processes that use them.
A relative DATA_DIR is taken relative to the project folder, where `.gitignore` expects it.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from honcho.manager import Manager
from honcho.printer import Printer

from common.settings import Settings, get_settings
from devtools.embedded import (
    LOOPBACK,
    EmbeddedPostgres,
    EmbeddedRedis,
    free_port,
    port_is_free,
)

ROOT = Path(__file__).resolve().parents[1]
# The virtualenv's bin folder, so that gunicorn, celery and flask are the venv's own.
BIN = Path(sys.executable).parent

DATABASE_NAME = "system1"
# The settings that point the stack at services of its own; without them it starts the
# embedded ones (see above). A shell that has them set is not a fresh machine.
SERVICE_VARIABLES = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
)
# Preferred ports: stable URLs between runs, away from the usual system servers.
POSTGRES_PORT = 54329
REDIS_PORT = 6390
LLM_PORT = 8001
FLOWER_PORT = 5555
DELIVERY_CONCURRENCY = 8
# Todo extraction: one short LLM call per finished draft.
TODO_CONCURRENCY = 4
# How long the stack may take to report healthy before we print what /health says.
READY_TIMEOUT_S = 60.0
# Exit codes honcho reports when *we* stopped the stack on SIGINT / SIGTERM.
REQUESTED_STOP_CODES = {130, 143}


class StartupError(Exception):
    """The stack cannot start; the message says why and what to look at."""


def say(message: str) -> None:
    """Print a line of our own, in the same style as honcho's `system` lines."""
    sys.stdout.write(f"{time.strftime('%H:%M:%S')} devstack | {message}\n")
    sys.stdout.flush()


def child_env(settings: Settings) -> dict[str, str]:
    """The environment every child inherits; later steps add the URLs they provide.

    Settings are still read through `Settings`; the copy only carries them to the children.
    """
    env = dict(os.environ)
    pythonpath = env.get("PYTHONPATH")
    env.update(
        PYTHONPATH=f"{ROOT}{os.pathsep}{pythonpath}" if pythonpath else str(ROOT),
        PYTHONUNBUFFERED="1",  # lines reach honcho as they are written
        HOST=settings.host,
        PORT=str(settings.port),
    )
    return env


def start_storage(
    settings: Settings,
    env: dict[str, str],
    servers: list[EmbeddedPostgres | EmbeddedRedis],
    preferred_ports: bool = True,
) -> None:
    """Start embedded PostgreSQL and Redis for whatever the environment does not provide.

    Servers are appended to `servers` before they start, so the caller stops even a server
    whose start-up failed half-way. Without `preferred_ports`, kernel-picked ports only.
    """
    data_dir = resolved_data_dir(settings)

    if "database_url" in settings.model_fields_set:
        say("PostgreSQL: using DATABASE_URL from the environment")
    else:
        port = free_port(POSTGRES_PORT if preferred_ports else None)
        postgres = EmbeddedPostgres(data_dir / "postgres", port)
        servers.append(postgres)
        postgres.start()
        postgres.ensure_database(DATABASE_NAME)
        env["DATABASE_URL"] = postgres.url(DATABASE_NAME)
        say(f"PostgreSQL: embedded at {env['DATABASE_URL']} (data {postgres.data_dir})")

    if "redis_url" in settings.model_fields_set:
        say("Redis: using REDIS_URL from the environment")
    else:
        port = free_port(REDIS_PORT if preferred_ports else None)
        redis_server = EmbeddedRedis(data_dir / "redis", port)
        servers.append(redis_server)
        redis_server.start()
        env["REDIS_URL"] = redis_server.url()
        say(f"Redis: embedded at {env['REDIS_URL']} (nothing persisted)")


def scripted_llm_command(
    settings: Settings, env: dict[str, str], preferred_ports: bool = True
) -> list[str] | None:
    """The scripted LLM's command line when no real LLM is configured, else None."""
    if settings.openai_api_key or settings.openai_base_url:
        say("LLM: using OPENAI_API_KEY/OPENAI_BASE_URL from the environment")
        return None
    port = free_port(LLM_PORT if preferred_ports else None)
    env["OPENAI_BASE_URL"] = f"http://{LOOPBACK}:{port}/v1"
    env["OPENAI_API_KEY"] = "scripted"
    say("No OPENAI_API_KEY/OPENAI_BASE_URL: using the offline scripted LLM")
    return [sys.executable, "-m", "devtools.scripted_llm", "--host", LOOPBACK, "--port", str(port)]


def flask(env: dict[str, str], *args: str, what: str) -> None:
    """Run a `flask` command of the app in the foreground; its output goes to the terminal."""
    command = [str(BIN / "flask"), "--app", "web.wsgi", *args]
    say(f"{what}: {shlex.join(command)}")
    result = subprocess.run(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise StartupError(f"{what} failed (exit code {result.returncode}); see the output above")


def resolved_data_dir(settings: Settings) -> Path:
    """DATA_DIR, relative to the project folder unless absolute."""
    data_dir = Path(settings.data_dir)
    return data_dir if data_dir.is_absolute() else ROOT / data_dir


def process_commands(settings: Settings, llm: list[str] | None, flower_port: int) -> dict[str, str]:
    """The long-running processes as shell lines, by the name honcho prefixes their output with.

    `exec` makes each program replace honcho's shell, so it receives honcho's signals itself.
    """
    gunicorn, celery = shlex.quote(str(BIN / "gunicorn")), shlex.quote(str(BIN / "celery"))
    # Celery's own default level (WARNING) would hide the workers' INFO lines: pass LOG_LEVEL.
    level = shlex.quote(settings.log_level)
    workers = (
        f"exec {celery} -A worker worker -P threads -E --without-gossip --without-mingle"
        f" --loglevel {level}"
    )
    commands = {
        "web": f"exec {gunicorn} --config web/gunicorn_conf.py web.wsgi:app",
        "turns": f"{workers} -Q {settings.turn_queue} -c {settings.turn_concurrency} -n turns@%h",
        "delivery": f"{workers} -Q {settings.delivery_queue} -c {DELIVERY_CONCURRENCY}"
        " -n delivery@%h",
        "todos": f"{workers} -Q {settings.todo_queue} -c {TODO_CONCURRENCY} -n todos@%h",
        # One beat per deployment: it runs the periodic recovery sweep.
        "beat": f"exec {celery} -A worker beat --loglevel {level}"
        f" --schedule {shlex.quote(str(resolved_data_dir(settings) / 'celerybeat-schedule'))}",
        "flower": f"exec {celery} -A worker flower --address={LOOPBACK} --port={flower_port}",
    }
    if llm is not None:
        commands["llm"] = "exec " + shlex.join(llm)
    return commands


def health_status(url: str) -> int | None:
    """The HTTP status of the health check, or None while nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:  # e.g. 503 while the workers are still starting
        return exc.code
    except OSError:
        return None


def announce_when_ready(urls: dict[str, str], health_url: str, stopping: threading.Event) -> None:
    """Print the URLs once /health says 200, or what it says after READY_TIMEOUT_S.

    Runs in a background thread. The first second is spent idle so that honcho forks its
    helpers while this thread holds no lock.
    """
    if stopping.wait(1.0):
        return
    deadline = time.monotonic() + READY_TIMEOUT_S
    status = health_status(health_url)
    while status != 200 and time.monotonic() < deadline and not stopping.wait(0.5):
        status = health_status(health_url)
    if stopping.is_set():
        return
    if status is None:
        say(f"the web node did not answer {health_url} within {READY_TIMEOUT_S:g} s")
        return
    width = max(map(len, urls))
    lines = [f"  {name.ljust(width)}  {url}" for name, url in urls.items()]
    verdict = "System1 is up" if status == 200 else f"System1 answers, but /health says {status}"
    say("\n".join([f"{verdict}:", *lines, "  Press Ctrl-C to stop everything."]))


def exit_code(honcho_code: int | None) -> int:
    """0 for a stop we were asked for; non-zero when a process stopped by itself."""
    if honcho_code in REQUESTED_STOP_CODES:
        return 0
    say(f"a process stopped by itself (code {honcho_code}), so the whole stack was stopped")
    if not honcho_code:
        return 1
    return 128 - honcho_code if honcho_code < 0 else honcho_code  # killed by a signal


@dataclass
class StackPlan:
    """A prepared stack: storage started, database migrated and seeded; what is left is to
    run `commands` (name -> shell line, each run from ROOT with `env`)."""

    env: dict[str, str]
    commands: dict[str, str]
    urls: dict[str, str]


def prepare_stack(
    settings: Settings,
    servers: list[EmbeddedPostgres | EmbeddedRedis],
    preferred_ports: bool = True,
) -> StackPlan:
    """Everything `make run` does before it starts its processes. Also used by `make bench`,
    which runs the same commands itself (without `preferred_ports`: free ports only)."""
    if not port_is_free(settings.port, settings.host):
        raise StartupError(f"{settings.host}:{settings.port} is in use: stop it or set PORT")
    env = child_env(settings)
    try:
        start_storage(settings, env, servers, preferred_ports)
    except (RuntimeError, TimeoutError) as exc:
        raise StartupError(str(exc)) from exc
    llm = scripted_llm_command(settings, env, preferred_ports)
    flask(env, "db", "upgrade", "--directory", "common/migrations", what="Migrations")
    flask(env, "seed-demo", what="Demo seed")

    flower_port = free_port(FLOWER_PORT if preferred_ports else None)
    resolved_data_dir(settings).mkdir(parents=True, exist_ok=True)  # beat's schedule file
    # A web node bound to every interface is still reached locally through the loopback.
    local_host = LOOPBACK if settings.host in ("0.0.0.0", "::") else settings.host
    web = f"http://{local_host}:{settings.port}"
    urls = {
        "API": web,
        "Socket.IO": f"{web} (same origin)",
        "Health": f"{web}/health",
        "Metrics": f"{web}/metrics",
        "Flower": f"http://{LOOPBACK}:{flower_port}",
        "LLM": env["OPENAI_BASE_URL"] if llm else (settings.openai_base_url or "OpenAI default"),
    }
    return StackPlan(env, process_commands(settings, llm, flower_port), urls)


def run(settings: Settings, servers: list[EmbeddedPostgres | EmbeddedRedis]) -> int:
    """Everything but the final clean-up, which `main` does whatever happens here."""
    plan = prepare_stack(settings, servers)
    manager = Manager(Printer(sys.stdout))
    for name, command in plan.commands.items():
        manager.add_process(name, command, env=plan.env, cwd=str(ROOT))

    urls = plan.urls
    stopping = threading.Event()
    announcer = threading.Thread(
        target=announce_when_ready, args=(urls, urls["Health"], stopping), daemon=True
    )
    announcer.start()
    try:
        manager.loop()  # returns when every process has stopped
    finally:
        stopping.set()
    return exit_code(manager.returncode)


def main() -> int:
    # Until honcho installs its own handlers, SIGINT and SIGTERM both raise KeyboardInterrupt,
    # so that the `finally` below stops the embedded servers in every case. SIGINT is set too
    # because a shell starts background jobs with it ignored, which children would inherit.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    servers: list[EmbeddedPostgres | EmbeddedRedis] = []
    try:
        return run(get_settings(), servers)
    except StartupError as exc:
        say(f"cannot start: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted during start-up")
        return 130
    finally:
        # A second Ctrl-C must not cut the clean-up short and leave servers behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for server in reversed(servers):
            say(f"stopping {server.name}")
            server.stop()


if __name__ == "__main__":
    sys.exit(main())
