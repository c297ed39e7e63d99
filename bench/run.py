"""`make bench` / `python -m bench`: the turn pipeline measured against its floors.

One run starts the stack as `make run` does (bench/stack.py) and the minimal pipeline next
to it, then, at each concurrency level, measures the same workload three ways, one after
the other so that they see the same machine: the bare `openai` floor, the minimal pipeline,
and System1. Then a saturation workload (no delays at the LLM), 1,000 idle sockets, and the
resend load. Results go to bench/results/ (JSON, markdown, PNG) unless --out says otherwise.

`--quick` is the tiny run that `make test` drives (tests/bench/test_bench_quick.py): the
same phases, at two small levels, for a few seconds each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import platform
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psutil
import requests

from bench import probes, profile, report
from bench.floors import MinimalClient, make_floor_sessions, new_http
from bench.loadgen import (
    BackendClient,
    LoopLag,
    Turn,
    Workload,
    create_sessions,
    gather_limited,
    idle_sockets,
    register_users,
    run_clients,
)
from bench.resend_load import acknowledge_all, ensure_sweep, insert_unacknowledged, measure
from bench.resources import ResourceMonitor, Window, cpu_calibration, load_average
from bench.stack import FullStack, MinimalStack, start_full_stack, start_minimal_stack
from bench.stats import summary_ms
from common.gc_tuning import freeze_startup_objects
from common.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results"
KINDS = ("floor", "minimal", "backend")
WARM_UP_SESSIONS = 2
# The processes whose CPU and memory a level reports, by pipeline.
MEASURED = {
    "backend": ("web", "turns", "delivery", "beat", "flower", "llm", "postgres", "redis"),
    "minimal": ("minimal-web", "minimal-worker", "llm", "redis"),
    "floor": ("llm",),
}


def log(message: str) -> None:
    sys.stdout.write(f"{time.strftime('%H:%M:%S')} bench | {message}\n")
    sys.stdout.flush()


@dataclass
class Config:
    quick: bool
    levels: list[int]
    streaming: Workload
    saturation: Workload
    saturation_levels: list[int]
    idle_sockets: int
    idle_hold_s: float
    resend_messages: int
    resend_interval_s: float
    resends_per_message: int
    resend_timeout_s: float
    token_emit_interval_ms: int
    turn_concurrency: int
    log_level: str
    profile_level: int | None
    out_dir: Path
    keep: bool
    database_url: str | None
    redis_url: str | None

    def settings_env(self) -> dict[str, str]:
        return {
            "TOKEN_EMIT_INTERVAL_MS": str(self.token_emit_interval_ms),
            "TURN_CONCURRENCY": str(self.turn_concurrency),
            "RESEND_INTERVAL_S": str(self.resend_interval_s),
            "LOG_LEVEL": self.log_level,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "quick": self.quick,
            "levels": self.levels,
            "streaming_workload": self.streaming.as_dict(),
            "saturation_workload": self.saturation.as_dict(),
            "saturation_levels": self.saturation_levels,
            "idle_sockets": self.idle_sockets,
            "resend_messages": self.resend_messages,
            "settings": self.settings_env(),
        }


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the tiny run of `make test`")
    parser.add_argument("--levels", help="concurrency levels, e.g. 1,10,50,100,200")
    parser.add_argument("--duration", type=float, help="seconds of load per level and pipeline")
    parser.add_argument("--ttft-ms", type=int, default=200, help="the scripted LLM's TTFT")
    parser.add_argument("--token-interval-ms", type=int, default=25, help="between its tokens")
    parser.add_argument("--reply-words", type=int, default=40, help="tokens per answer")
    parser.add_argument(
        "--think-ms", type=int, default=2000, help="a user's pause between an answer and the next"
    )
    parser.add_argument("--saturation-levels", help="levels of the no-delay workload, e.g. 50")
    parser.add_argument("--saturation-words", type=int, help="tokens per no-delay answer")
    parser.add_argument("--idle-sockets", type=int, help="idle sockets held at once")
    parser.add_argument("--resend-messages", type=int, help="unacknowledged messages")
    parser.add_argument("--token-emit-interval-ms", type=int, default=50)
    parser.add_argument(
        "--turn-concurrency",
        type=int,
        default=Settings.model_fields["turn_concurrency"].default,
        help="TURN_CONCURRENCY of System1 and slots of the minimal pipeline (default: System1's)",
    )
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the stack")
    parser.add_argument(
        "--profile-level", type=int, help="also py-spy the backend at this level (a phase apart)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, data)")
    parser.add_argument("--database-url", help="an existing PostgreSQL (default: embedded)")
    parser.add_argument("--redis-url", help="an existing Redis (default: embedded)")
    args = parser.parse_args(argv)

    quick = args.quick
    levels = args.levels or ("1,4" if quick else "1,10,50,100,200")
    duration = args.duration or (2.0 if quick else 20.0)
    streaming = Workload(
        ttft_ms=args.ttft_ms,
        token_interval_ms=args.token_interval_ms,
        reply_words=args.reply_words if not quick else min(args.reply_words, 12),
        duration_s=duration,
        think_ms=min(args.think_ms, 200) if quick else args.think_ms,
        turn_timeout_s=60.0,
    )
    saturation = replace(
        streaming,
        ttft_ms=0,
        token_interval_ms=0,
        think_ms=0,
        reply_words=args.saturation_words or (30 if quick else 200),
    )
    return Config(
        quick=quick,
        levels=[int(x) for x in levels.split(",") if x.strip()],
        streaming=streaming,
        saturation=saturation,
        saturation_levels=[
            int(x) for x in (args.saturation_levels or ("4" if quick else "50,100")).split(",")
        ],
        idle_sockets=args.idle_sockets
        if args.idle_sockets is not None
        else (20 if quick else 1000),
        idle_hold_s=1.0 if quick else 5.0,
        resend_messages=(
            args.resend_messages if args.resend_messages is not None else (50 if quick else 10_000)
        ),
        resend_interval_s=1.0 if quick else 5.0,
        resends_per_message=1 if quick else 3,
        resend_timeout_s=20.0 if quick else 90.0,
        token_emit_interval_ms=args.token_emit_interval_ms,
        turn_concurrency=args.turn_concurrency,
        log_level=args.log_level,
        profile_level=args.profile_level,
        out_dir=args.out,
        keep=args.keep,
        database_url=args.database_url,
        redis_url=args.redis_url,
    )


def machine() -> dict[str, Any]:
    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu_model or platform.processor(),
        "cores": psutil.cpu_count(logical=True),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def raise_open_files_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return wanted


class Bench:
    """One benchmark run: the processes, the monitor, and the results gathered so far."""

    def __init__(self, config: Config, work_dir: Path):
        self.config = config
        self.work_dir = work_dir
        self.monitor = ResourceMonitor()
        self.full: FullStack | None = None
        self.minimal: MinimalStack | None = None
        self.tokens: list[str] = []
        self.me = psutil.Process()
        self.phases = 0
        self.results: dict[str, Any] = {
            "machine": machine(),
            "config": config.as_dict(),
            "load_average": {"start": load_average()},
            "cpu_calibration": {"start": cpu_calibration()},
            "levels": [],
            "saturation": [],
        }
        # Latency samples for the plots: (phase name, kind, level) -> added TTFT seconds.
        self.samples: dict[tuple[str, str, int], list[float]] = {}

    # -- processes -------------------------------------------------------------------------

    def start(self) -> None:
        config = self.config
        log(f"starting the stack (work folder {self.work_dir})")
        self.full = start_full_stack(
            self.work_dir, config.settings_env(), config.database_url, config.redis_url
        )
        for name, proc in self.full.procs.items():
            self.monitor.watch(name, proc.pid)
        for name, pid in self.full.server_pids().items():
            self.monitor.watch(name, pid)
        self.monitor.watch("client", self.me.pid, tree=False)
        log(f"stack up at {self.full.base_url}; starting the minimal pipeline")
        self.minimal = start_minimal_stack(self.full, self.work_dir, config.turn_concurrency)
        for name, proc in self.minimal.procs.items():
            self.monitor.watch(name, proc.pid)
        self.results["web_memory_at_start_mb"] = self._web_memory()
        self.results["stack"] = {
            "commands": {name: proc.command for name, proc in self.full.procs.items()},
            "minimal_commands": {name: proc.command for name, proc in self.minimal.procs.items()},
        }

    def stop(self) -> None:
        if self.minimal is not None:
            self.minimal.stop()
        if self.full is not None:
            self.full.stop()
        self.monitor.close()

    def _web_memory(self) -> dict[str, float]:
        """The web node's memory, named: gunicorn master RSS, worker RSS, node PSS."""
        assert self.full is not None
        raw = self.monitor.memory_mb("web")
        master = self.full.procs["web"].pid
        worker = self.web_worker_pid()
        return {
            "master_rss": raw.get(f"rss_{master}", 0.0),
            "worker_rss": raw.get(f"rss_{worker}", 0.0),
            "pss_total": raw["pss_total"],
        }

    def web_worker_pid(self) -> int:
        """The gunicorn worker (the process that serves), not its master."""
        assert self.full is not None
        master = psutil.Process(self.full.procs["web"].pid)
        children = master.children()
        return children[0].pid if children else master.pid

    # -- one level of one pipeline -----------------------------------------------------------

    async def _level(
        self, kind: str, sessions: int, workload: Workload, phase: str, linger: bool = True
    ) -> dict:
        assert self.full is not None and self.minimal is not None
        self.phases += 1
        run_tag = f"{kind[0]}{self.phases}"
        lag = LoopLag()
        async with new_http() as http:
            if kind == "floor":
                clients: list[Any] = make_floor_sessions(self.full.llm_base_url, sessions, run_tag)
            elif kind == "minimal":
                clients = [
                    MinimalClient(i, self.minimal.base_url, http, run_tag) for i in range(sessions)
                ]
            else:
                clients = [
                    BackendClient(i, self.full.base_url, http, run_tag, self.tokens[i])
                    for i in range(sessions)
                ]
            if kind != "floor":
                await gather_limited((c.setup() for c in clients), 25)
            window: dict[str, Any] = {}
            profiles: list[tuple[str, Any, Path]] = []

            def window_start() -> None:
                window["cpu"] = self.me.cpu_times()
                window["w"] = self.monitor.start_window()
                window["load"] = load_average()
                if phase == "profile":
                    profiles.extend(self._start_profiles(phase, sessions, workload.duration_s))

            def window_end() -> None:
                window["w"] = self.monitor.end_window(window["w"])
                cpu = self.me.cpu_times()
                window["client_cpu_s"] = (cpu.user + cpu.system) - (
                    window["cpu"].user + window["cpu"].system
                )

            lag.start()
            start, end = await run_clients(clients, workload, window_start, window_end)
            await lag.stop()
            if kind == "backend" and linger:
                # Catch resends that crossed an ack, or came for lack of one.
                await asyncio.sleep(self.config.resend_interval_s + 1.0)
            await gather_limited((c.close() for c in clients), 100)
        llm_streams = self._llm_streams()
        summary = summarize(
            kind, sessions, workload, clients, start, end, window, llm_streams, lag.samples
        )
        if kind == "backend":
            summary["unacknowledged_in_db"] = self._unacknowledged([c.session_id for c in clients])
        for name, process, out in profiles:
            process.wait(timeout=workload.duration_s + 30)
            summary.setdefault("profile", {})[name] = profile.summarise(out)
        turns = [t for c in clients for t in c.turns if t.first_token_at is not None]
        self.samples[(phase, kind, sessions)] = [
            t.first_token_at - t.sent_at - workload.ttft_ms / 1000 for t in turns
        ]
        return summary

    def _start_profiles(self, phase: str, sessions: int, seconds: float) -> list:
        assert self.full is not None
        out_dir = self.work_dir / "profiles"
        out_dir.mkdir(exist_ok=True)
        started = []
        for name, pid in (
            ("web", self.web_worker_pid()),
            ("turns", self.full.procs["turns"].pid),
        ):
            out = out_dir / f"{phase}{self.phases}-{sessions}-{name}.txt"
            process = profile.start(pid, seconds, out)
            if process is not None:
                started.append((name, process, out))
        return started

    def _llm_streams(self) -> dict[str, dict[str, Any]]:
        """The scripted LLM's record of the streams since the last call, by answer tag."""
        assert self.full is not None
        root = self.full.llm_root
        streams = requests.get(f"{root}/_streams", timeout=30).json()["streams"]
        requests.post(f"{root}/_reset", timeout=10)
        return {str(s["head"]).split(" ", 1)[0]: s for s in streams}

    def _unacknowledged(self, session_ids: list[str]) -> int:
        import psycopg2

        assert self.full is not None
        connection = psycopg2.connect(self.full.database_url)
        try:
            with connection, connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM md_message WHERE session_id = ANY(%s)"
                    " AND sender = 'mojo' AND acknowledged_at IS NULL",
                    (session_ids,),
                )
                return int(cursor.fetchone()[0])
        finally:
            connection.close()

    def level(self, kind: str, sessions: int, workload: Workload, phase: str) -> dict[str, Any]:
        log(f"{phase}: {kind} at {sessions} session(s) for {workload.duration_s:g} s")
        # No collection in this process while it measures: even after `gc.freeze()` the
        # clients of a level made full collections of 30-70 ms here, each one counted as
        # latency of the pipeline it hit. The cycles of a level are collected after it.
        gc.disable()
        try:
            summary = asyncio.run(self._level(kind, sessions, workload, phase))
        finally:
            gc.enable()
            gc.collect()
        log("  " + one_line(summary))
        return summary

    # -- phases ------------------------------------------------------------------------------

    def register(self) -> None:
        assert self.full is not None
        count = max([WARM_UP_SESSIONS, *self.config.levels, *self.config.saturation_levels])
        log(f"registering {count} user(s)")

        async def go() -> list[str]:
            async with new_http() as http:
                return await register_users(http, self.full.base_url, count, "u")

        self.tokens = asyncio.run(go())

    def warm_up(self) -> None:
        """A burst of turns through each pipeline at the largest streaming level, unrecorded:
        imports, clients, and the pools of connections and threads grown to that load. A
        level run at a concurrency not seen before otherwise pays for their growth in its
        p99 (at 50 sessions, a second run of the level had a p99 of 73 ms where the first
        had 171, and the minimal pipeline 63 where it had 144)."""
        sessions = max([WARM_UP_SESSIONS, *self.config.levels])
        warm = replace(self.config.streaming, duration_s=1.0, ttft_ms=0, token_interval_ms=0)
        for kind in KINDS:
            asyncio.run(self._level(kind, sessions, warm, "warm-up", linger=False))

    def run_levels(self, phase: str, workload: Workload, levels: list[int]) -> list[dict]:
        rows = []
        for sessions in levels:
            row = {"sessions": sessions}
            for kind in KINDS:
                row[kind] = self.level(kind, sessions, workload, phase)
            rows.append(row)
        return rows

    def idle(self) -> dict[str, Any]:
        assert self.full is not None
        count = self.config.idle_sockets
        log(f"idle sockets: {count}")

        async def go() -> dict[str, Any]:
            async with new_http() as http:
                sessions = await create_sessions(
                    http, self.full.base_url, self.tokens, max(1, min(100, count // 10))
                )
                return await idle_sockets(
                    http,
                    self.full.base_url,
                    sessions,
                    count,
                    self.config.idle_hold_s,
                    self._web_memory,
                )

        result = asyncio.run(go())
        log(f"  {result}")
        return result

    def resend(self) -> dict[str, Any]:
        assert self.full is not None
        config = self.config
        count = config.resend_messages
        log(
            f"resend load: {count} unacknowledged messages, resent every "
            f"{config.resend_interval_s:g} s"
        )

        async def sessions() -> list[tuple[str, str]]:
            async with new_http() as http:
                return await create_sessions(
                    http, self.full.base_url, self.tokens, max(1, min(100, count // 100))
                )

        session_ids = [s for _, s in asyncio.run(sessions())]
        pks = insert_unacknowledged(
            self.full.database_url, session_ids, count, config.resend_interval_s
        )
        rss_before = {name: self.monitor.rss_mb(name) for name in ("turns", "delivery", "web")}
        window = self.monitor.start_window()
        load = load_average()
        ensure_sweep()
        result = measure(
            self.full.database_url,
            self.full.redis_url,
            pks,
            config.resend_interval_s,
            config.resends_per_message,
            config.resend_timeout_s,
        )
        window = self.monitor.end_window(window)
        acknowledge_all(self.full.database_url, pks)
        result["rss_before_mb"] = rss_before
        result["resources"] = select_resources(window, ("web", "turns", "delivery", "redis"))
        result["load_average"] = load
        log(f"  {result}")
        return result

    def run(self) -> dict[str, Any]:
        config = self.config
        self.start()
        assert self.full is not None
        self.results["commit_latency_ms"] = probes.commit_latency(self.full.database_url)
        log(f"PostgreSQL commit latency: {self.results['commit_latency_ms']}")
        self.register()
        log("warm-up")
        self.warm_up()
        # This process is the measuring instrument: a full collection scanning its start-up
        # objects (70-100 ms, seen with gc callbacks) counted as latency of whichever
        # pipeline it hit (see also `level`).
        freeze_startup_objects()
        self.results["levels"] = self.run_levels("streaming", config.streaming, config.levels)
        self.results["saturation"] = self.run_levels(
            "saturation", config.saturation, config.saturation_levels
        )
        if config.profile_level:
            # Apart from the measured levels: py-spy takes CPU from the processes it samples.
            for name, workload in (
                ("streaming", config.streaming),
                ("saturation", config.saturation),
            ):
                summary = self.level("backend", config.profile_level, workload, "profile")
                self.results.setdefault("profiles", {})[name] = {
                    "sessions": config.profile_level,
                    "functions": summary.get("profile", {}),
                }
        if config.idle_sockets:
            self.results["idle_sockets"] = self.idle()
        if config.resend_messages:
            self.results["resend"] = self.resend()
        self.results["load_average"]["end"] = load_average()
        self.results["cpu_calibration"]["end"] = cpu_calibration()
        return self.results


def select_resources(window: Window, names: tuple[str, ...]) -> dict[str, Any]:
    data = window.as_dict()
    return {name: data[name] for name in names if name in data}


def summarize(
    kind: str,
    sessions: int,
    workload: Workload,
    clients: list[Any],
    start: float,
    end: float,
    window: dict[str, Any],
    llm: dict[str, dict[str, Any]],
    lag: list[float],
) -> dict[str, Any]:
    """The figures of one pipeline at one level."""
    turns: list[Turn] = [t for c in clients for t in c.turns]
    sent = [t for t in turns if t.put_status == 200]
    finished = [t for t in sent if t.message_at is not None]
    in_window = [t for t in finished if start <= t.message_at <= end]  # type: ignore[operator]
    duration = end - start
    ttft_s = workload.ttft_ms / 1000
    streams = [(t, llm.get(t.tag)) for t in sent]
    with_llm = [(t, s) for t, s in streams if s and s.get("last_chunk_at")]
    events = sum(1 for c in clients for at in c.event_times if start <= at <= end)
    w: Window = window["w"]
    client_cpu = window.get("client_cpu_s", 0.0)
    result: dict[str, Any] = {
        "sessions": sessions,
        "duration_s": round(duration, 2),
        "turns_sent": len(sent),
        "turns_finished": len(finished),
        "lost": len(sent) - len(finished),
        "duplicates": sum(c.duplicates for c in clients),
        "wrong_text": sum(1 for t in finished if t.text_ok is False),
        "send_errors": len(turns) - len(sent),
        "unmatched_events": sum(c.unmatched for c in clients),
        "added_ttft_ms": summary_ms(
            t.first_token_at - t.sent_at - ttft_s for t in sent if t.first_token_at is not None
        ),
        "last_chunk_to_message_ms": summary_ms(
            t.message_at - s["last_chunk_at"] for t, s in with_llm if t.message_at is not None
        ),
        # Where the added time goes: before the LLM is asked, and after its first chunk.
        "request_to_llm_ms": summary_ms(s["received_at"] - t.sent_at for t, s in with_llm),
        "llm_first_chunk_to_client_ms": summary_ms(
            t.first_token_at - s["first_chunk_at"]
            for t, s in with_llm
            if t.first_token_at is not None and s.get("first_chunk_at")
        ),
        "llm_ttft_ms": summary_ms(
            s["first_chunk_at"] - s["received_at"] for _, s in with_llm if s.get("first_chunk_at")
        ),
        "turns_per_s": round(len(in_window) / duration, 2),
        "tokens_per_s": round(sum(t.tokens for t in in_window) / duration, 1),
        "events_per_s": round(events / duration, 1),
        "token_events_per_turn": round(sum(t.token_events for t in finished) / len(finished), 1)
        if finished
        else None,
        "resources": select_resources(w, MEASURED[kind]),
        "client": {
            "cpu_cores": round(client_cpu / w.wall_s, 3) if w.wall_s else None,
            "loop_lag_ms": summary_ms(lag),
        },
        "load_average": window.get("load"),
        "errors": [e for c in clients for e in c.errors][:5],
    }
    # CPU of the pipeline's own processes (not the LLM, not the client) per finished turn.
    own = sum(v["cpu_s"] for n, v in result["resources"].items() if n != "llm")
    result["cpu_ms_per_turn"] = round(1000 * own / len(in_window), 1) if in_window else None
    if kind != "floor":
        result["put_ms"] = summary_ms(
            t.put_done_at - t.sent_at for t in sent if t.put_done_at is not None
        )
    return result


def one_line(s: dict[str, Any]) -> str:
    ttft = s["added_ttft_ms"]
    return (
        f"added TTFT p50 {ttft['p50']} p99 {ttft['p99']} ms; {s['turns_per_s']} turns/s, "
        f"{s['tokens_per_s']} tokens/s, {s['events_per_s']} events/s; lost {s['lost']}, "
        f"dup {s['duplicates']}; client {s['client']['cpu_cores']} cores"
    )


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    raise_open_files_limit()
    work_dir = Path(tempfile.mkdtemp(prefix="system1-bench-"))
    bench = Bench(config, work_dir)
    started = time.monotonic()
    failed = True
    try:
        results = bench.run()
        results["run_s"] = round(time.monotonic() - started, 1)
        results["finished_at"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        written = report.write(results, bench.samples, config.out_dir)
        log("results: " + ", ".join(str(p) for p in written))
        failed = False
    finally:
        log("stopping")
        bench.stop()
        if config.keep or failed:
            log(f"work folder kept: {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
