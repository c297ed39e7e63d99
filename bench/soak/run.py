"""`make soak` (`python -m bench.soak`): the stack under load while its parts fail.

The stack is the one `make run` starts (bench/stack.py), plus a second web node, every
process supervised so that a killed one comes back (bench/soak/supervisor.py). N clients
(bench/soak/load.py) stream turns for M minutes, acknowledging every answer, a share of
them leaving and rejoining at random. Meanwhile a fault schedule drawn from a seed
(bench/soak/faults.py; the seed is printed, `--seed` replays it) kills processes and
restarts Redis, PostgreSQL and the LLM. Then the load stops, the stack settles, and
PostgreSQL says whether anything was lost (bench/soak/checks.py). Results:
bench/results/soak.{md,json,png} (bench/soak/report.py).

Everything listens on the loopback; every client loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.soak import checks, faults, report
from bench.soak.load import LoadShape, Recorder, SoakClient, register
from bench.soak.supervisor import Supervisor
from bench.stack import FullStack, start_full_stack, wait_for
from devtools.embedded import free_port
from devtools.processes import ChildProcess

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "bench" / "results"
# Settings of the soak's stack beyond `make run`'s: a stalled LLM stream is given up
# after 5 s (30 s by default), so that a stall exercises the retry path within a fault.
SOAK_SETTINGS = {"LOG_LEVEL": "WARNING", "LLM_STALL_TIMEOUT_S": "5"}
QUICK_DURATIONS = faults.Durations(
    redis_down_s=1.0, postgres_down_s=4.0, llm_refuse_s=3.0, llm_stall_s=4.0
)


def log(message: str) -> None:
    sys.stdout.write(f"{time.strftime('%H:%M:%S')} soak | {message}\n")
    sys.stdout.flush()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one minute, 20 sessions")
    parser.add_argument("--sessions", type=int, help="concurrent conversations (100)")
    parser.add_argument("--minutes", type=float, help="minutes of load (10; quick: 1)")
    parser.add_argument("--flaky-share", type=float, default=0.2, help="clients that leave")
    parser.add_argument("--seed", type=int, help="the fault schedule's seed (default: random)")
    parser.add_argument("--faults", help=f"kinds, comma-separated (default all: {faults.KINDS})")
    parser.add_argument("--repeats", type=int, help="times each kind (2; quick: 1)")
    parser.add_argument("--settle-timeout", type=float, default=240.0, help="seconds")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)
    args.sessions = args.sessions or (20 if args.quick else 100)
    args.minutes = args.minutes or (1.0 if args.quick else 10.0)
    args.repeats = args.repeats or (1 if args.quick else 2)
    args.seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    kinds = tuple(k.strip() for k in (args.faults or ",".join(faults.KINDS)).split(",") if k)
    unknown = set(kinds) - set(faults.KINDS)
    if unknown:
        parser.error(f"unknown fault kinds {sorted(unknown)}; known: {faults.KINDS}")
    args.kinds = kinds
    return args


class LoadThread(threading.Thread):
    """The clients, on an asyncio loop of their own, beside the main thread's faults."""

    def __init__(self, nodes: list[str], args: argparse.Namespace, shape: LoadShape):
        super().__init__(name="load", daemon=True)
        self.nodes, self.args, self.shape = nodes, args, shape
        self.recorder = Recorder()
        self.clients: list[SoakClient] = []
        self.started_at = 0.0
        self.ready = threading.Event()
        self.load_done = threading.Event()
        self.may_close = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by the main thread
            self.failure = exc
            self.ready.set()
            self.load_done.set()

    async def _main(self) -> None:
        args, shape = self.args, self.shape
        rng = random.Random(args.seed)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            pairs = await register(http, self.nodes[0], args.sessions, f"{args.seed}-{time.time()}")
            flaky = set(rng.sample(range(args.sessions), round(args.flaky_share * args.sessions)))
            self.clients = [
                SoakClient(
                    i,
                    self.nodes,
                    token,
                    sid,
                    http,
                    shape,
                    self.recorder,
                    random.Random(args.seed * 1000 + i),
                    i in flaky,
                )
                for i, (token, sid) in enumerate(pairs)
            ]
            await asyncio.gather(*(c.connect() for c in self.clients))
            self.started_at = time.time()
            end_at = self.started_at + 60 * args.minutes
            self.ready.set()
            runs = [asyncio.create_task(c.run(end_at)) for c in self.clients]
            leaving = [asyncio.create_task(c.leave_for_a_while()) for c in self.clients if c.flaky]
            await asyncio.sleep(max(0.0, end_at - time.time()))
            for client in self.clients:
                client.sending = False
            # Turns in flight get their answer (bounded by each turn's timeout).
            await asyncio.gather(*runs)
            for task in leaving:
                task.cancel()
            await asyncio.gather(*leaving, return_exceptions=True)
            # Everyone back for the settling: resends and replays must find them.
            await asyncio.gather(*(c.reconnect() for c in self.clients if not c.connected.is_set()))
            self.load_done.set()
            while not self.may_close.is_set():
                await asyncio.sleep(0.2)
            await asyncio.gather(*(c.close() for c in self.clients))


def start_second_web_node(stack: FullStack, log_dir: Path) -> str:
    port = free_port()
    env = {**stack.env, "PORT": str(port)}
    stack.procs["web2"] = ChildProcess.shell("web2", stack.procs["web"].command, env, log_dir)
    stack.procs["web2"].start()
    url = f"http://127.0.0.1:{port}"
    wait_for(url + "/health", 60, "the second web node", [stack.procs["web2"]])
    return url


def run(args: argparse.Namespace, work_dir: Path) -> dict[str, Any]:
    durations = QUICK_DURATIONS if args.quick else faults.Durations()
    load_s = 60 * args.minutes
    plan = faults.schedule(
        args.seed,
        load_s,
        args.kinds,
        args.repeats,
        warm_up_s=8.0 if args.quick else 20.0,
        tail_s=12.0 if args.quick else 40.0,
    )
    log(f"seed {args.seed}: {len(plan)} faults over {load_s:g} s of load, {args.sessions} sessions")
    for fault in plan:
        log(f"  at {fault.at_s:6.1f} s  {fault.kind} {fault.target}")
    stack = start_full_stack(work_dir, SOAK_SETTINGS)
    supervisor = Supervisor(stack.procs)
    load: LoadThread | None = None
    try:
        nodes = [stack.base_url, start_second_web_node(stack, work_dir / "logs")]
        supervisor.start()
        injector = faults.Injector(stack, supervisor, durations)
        load = LoadThread(nodes, args, LoadShape(flaky_share=args.flaky_share))
        load.start()
        load.ready.wait(300)
        if load.failure:
            raise RuntimeError("the load could not start") from load.failure
        log(f"load started: {args.sessions} clients on {nodes}")
        records: list[faults.FaultRecord] = []
        for fault in plan:
            time.sleep(max(0.0, load.started_at + fault.at_s - time.time()))
            log(f"fault: {fault.kind} {fault.target}")
            record = injector.inject(fault)
            log(f"  back after {record.ended_at - record.started_at:.1f} s ({record.detail})")
            records.append(record)
        load.load_done.wait(60 * args.minutes + 600)
        if load.failure:
            raise RuntimeError("the load failed") from load.failure
        load_ended_at = time.time()
        log("load stopped; letting the stack settle")
        sessions = [c.session_id for c in load.clients]
        accepted = {t.tag for c in load.clients for t in c.turns if t.accepted_at is not None}
        deadline = time.monotonic() + args.settle_timeout
        state = checks.database_state(stack.database_url, sessions, accepted)
        while not checks.settled(state) and time.monotonic() < deadline:
            time.sleep(3)
            state = checks.database_state(stack.database_url, sessions, accepted)
        settle_s = time.time() - load_ended_at
        health = checks.health(nodes)
        log(f"settled in {settle_s:.0f} s: {json.dumps(state)}; health {health}")
        load.may_close.set()
        load.join(30)
        return report.results(
            args=args,
            durations=durations,
            plan=plan,
            records=records,
            load=load,
            supervisor=supervisor,
            state=state,
            health=health,
            settle_s=settle_s,
            load_ended_at=load_ended_at,
        )
    finally:
        if load is not None:
            load.may_close.set()
        supervisor.stop()
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work_dir = Path(tempfile.mkdtemp(prefix="system1-soak-"))
    log(f"work folder {work_dir}")
    try:
        results = run(args, work_dir)
    finally:
        if not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    report.write(results, args.out)
    totals = results["totals"]
    log(
        f"seed {args.seed}: sent {totals['sent']}, answered {totals['answered']}, "
        f"lost {totals['lost']}, duplicated {totals['duplicated']}; "
        f"report in {args.out / 'soak.md'}"
    )
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 0 if results["verdict"]["passed"] else 1
