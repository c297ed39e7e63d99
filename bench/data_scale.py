"""`python -m bench.data_scale`: what System1 costs as the data grows.

Two databases on one embedded PostgreSQL, in the same run: *empty* (migrated, nothing
else) and *full* (100,000 users, 1,000,000 sessions and 10,000,000 messages at
`--scale 1`, in the real tables with their real indexes). Both then get the same fixtures
(a session of 5,000 messages, a user with 1,000 sessions, 100,000 unacknowledged
messages) and the same measurements, each through the stack as `make run` starts it:

- PUT /user_message p50/p99 and the added time to first token at 50 sessions
  (bench/loadgen.py: the time to the first `mojo_token` minus the LLM's own TTFT knob);
- GET /message: the first page and a deep page (offset 4,900) of the 5,000-message session;
- GET /session of the user with 1,000 sessions (first page);
- a turn's claim with its history on the 5,000-message session (`claim_turn_with_history`);
- a resend sweep's claim of 500 due messages among 100,000 unacknowledged
  (`claim_due_resends`, rolled back after each so every sample sees the same rows);
- the start of a web node, until its /health answers 200.

Goal: full <= 1.2x empty on each (the p50; the p99 too for PUT). The plans of the
statements are kept (EXPLAIN ANALYZE on the full database) and shown for rows that miss.

The fill is bulk SQL (generate_series), with foreign keys and secondary indexes dropped
during the load and built again after it (as a restore does), then VACUUM ANALYZE; it is
cached as a pg_dump custom-format file under ~/.cache/system1/bench (keyed by the scale
and the migrations), restored with `pg_restore -j2` on reruns.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import psycopg2
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from bench.loadgen import BackendClient, Workload, register_users, run_clients
from bench.stack import FullStack, start_full_stack, wait_for
from bench.stats import summary_ms
from devtools import devstack
from devtools.embedded import EmbeddedPostgres, _package_bin, free_port
from devtools.processes import ChildProcess

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results"
DEFAULT_CACHE = Path.home() / ".cache" / "system1" / "bench"
FULL = {"users": 100_000, "sessions": 1_000_000, "messages": 10_000_000}
BIG_SESSION_MESSAGES = 5_000
MANY_SESSIONS = 1_000
UNACKED = 100_000
GOAL = 1.2
WORKLOAD = Workload(ttft_ms=200, token_interval_ms=25, reply_words=40, duration_s=20, think_ms=2000)


def log(message: str) -> None:
    sys.stdout.write(f"{time.strftime('%H:%M:%S')} data-scale | {message}\n")
    sys.stdout.flush()


def pg_bin(program: str) -> str:
    return str(_package_bin("pgserver", "pginstall", "bin", program))


# --- the fill -----------------------------------------------------------------------------

_DROPPABLE_SQL = """
SELECT 'fk', conrelid::regclass::text, conname,
       format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::regclass, conname,
              pg_get_constraintdef(oid))
FROM pg_constraint
WHERE contype = 'f' AND conrelid IN ('md_message'::regclass, 'md_session'::regclass)
UNION ALL
SELECT 'ix', tablename, indexname, indexdef
FROM pg_indexes
WHERE tablename IN ('md_message', 'md_session')
  AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u'))
"""


def fill(url: str, scale: float) -> dict[str, Any]:
    """Bulk rows into the migrated database at `url`; returns counts and timings."""
    users = max(10, int(FULL["users"] * scale))
    sessions = max(100, int(FULL["sessions"] * scale))
    messages = max(1000, int(FULL["messages"] * scale))
    per_session = messages // sessions  # 10, as a year of short chats
    took: dict[str, float] = {}
    conn = psycopg2.connect(url)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SET maintenance_work_mem = '1GB'")
    cur.execute("SET synchronous_commit = off")
    cur.execute(_DROPPABLE_SQL)
    droppable = cur.fetchall()
    for kind, table, name, _ in droppable:
        if kind == "fk":
            cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for kind, _table, name, _ in droppable:
        if kind == "ix":
            cur.execute(f'DROP INDEX "{name}"')

    def step(name: str, sql: str, **params: Any) -> None:
        started = time.monotonic()
        cur.execute(sql, params)
        took[name] = round(time.monotonic() - started, 1)
        log(f"  {name}: {took[name]} s")

    # A year of activity, oldest first: session g's last message at g/sessions of the year.
    step(
        "users",
        """INSERT INTO md_user (user_id, email, name, password_hash, creation_date)
        SELECT md5('u' || g), 'fill-' || g || '@example.com', 'Fill ' || g, 'no login',
               now() - interval '400 days'
        FROM generate_series(1, %(users)s) g""",
        users=users,
    )
    step(
        "sessions",
        """INSERT INTO md_session (session_id, user_id, title, platform, mode, intro_done,
                                   creation_date, last_message_date)
        SELECT md5('s' || g), md5('u' || (1 + g %% %(users)s)), 'Session ' || g, 'web', 'chat',
               true, t - interval '1 hour', t
        FROM generate_series(1, %(sessions)s) g,
             LATERAL (SELECT now() - interval '366 days'
                             + (g::float8 / %(sessions)s) * interval '365 days' AS t) d""",
        users=users,
        sessions=sessions,
    )
    # Message g belongs to session 1 + (g-1)/per_session; odd: the user's, even: the
    # answer to the one before, acknowledged. Explicit pks so that replies can name theirs.
    step(
        "messages",
        """INSERT INTO md_message (message_pk, session_id, sender, event_name, message,
                                   client_message_id, in_reply_to_pk, message_date,
                                   creation_date, acknowledged_at, delivery_attempts,
                                   last_delivery_at)
        SELECT g, md5('s' || s), CASE WHEN g %% 2 = 1 THEN 'user' ELSE 'mojo' END,
               CASE WHEN g %% 2 = 1 THEN 'user_message' ELSE 'mojo_message' END,
               jsonb_build_object('text', 'Message ' || g
                   || ' of a year of chats, about as long as a short answer is.'),
               CASE WHEN g %% 2 = 1 THEN 'c' || g END,
               CASE WHEN g %% 2 = 0 THEN g - 1 END,
               t, t, CASE WHEN g %% 2 = 0 THEN t END,
               CASE WHEN g %% 2 = 0 THEN 1 ELSE 0 END, CASE WHEN g %% 2 = 0 THEN t END
        FROM generate_series(1, %(messages)s) g,
             LATERAL (SELECT 1 + (g - 1) / %(per)s AS s) a,
             LATERAL (SELECT now() - interval '366 days'
                             + (s::float8 / %(sessions)s) * interval '365 days'
                             - ((%(per)s - (g - 1) %% %(per)s) * interval '1 minute') AS t) d""",
        messages=messages,
        per=per_session,
        sessions=sessions,
    )
    cur.execute(
        "SELECT setval(pg_get_serial_sequence('md_message', 'message_pk'),"
        " (SELECT max(message_pk) FROM md_message))"
    )
    started = time.monotonic()
    for kind, _table, _name, ddl in droppable:
        if kind == "ix":
            cur.execute(ddl)
    for kind, _table, _name, ddl in droppable:
        if kind == "fk":
            cur.execute(ddl)
    took["indexes_and_keys"] = round(time.monotonic() - started, 1)
    log(f"  indexes and foreign keys: {took['indexes_and_keys']} s")
    step("vacuum_analyze", "VACUUM ANALYZE")
    conn.close()
    return {"users": users, "sessions": sessions, "messages": messages, "took_s": took}


def cache_key(scale: float) -> str:
    """The scale and the migrations: a new migration means a new fill."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "common" / "migrations" / "versions").glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    digest.update(Path(__file__).read_bytes().split(b"# --- the fill")[1].split(b"# ---")[0])
    return f"full-{scale:g}-{digest.hexdigest()[:12]}"


def migrate(url: str, env: dict[str, str]) -> None:
    subprocess.run(
        [
            str(devstack.BIN / "flask"),
            "--app",
            "web.wsgi",
            "db",
            "upgrade",
            "--directory",
            "common/migrations",
        ],
        cwd=ROOT,
        env={**env, "DATABASE_URL": url},
        check=True,
        capture_output=True,
    )


def prepare_full(
    postgres: EmbeddedPostgres, scale: float, cache: Path, env: dict[str, str], refill: bool
) -> dict[str, Any]:
    """The full database: restored from the cached dump, or filled (and dumped)."""
    url = postgres.url("ds_full")
    dump = cache / f"{cache_key(scale)}.dump"
    started = time.monotonic()
    if dump.exists() and not refill:
        log(f"restoring {dump} ({dump.stat().st_size / 2**30:.2f} GB) with pg_restore -j2")
        subprocess.run(
            [pg_bin("pg_restore"), "-j", "2", "--no-owner", "-d", url, str(dump)],
            check=True,
            capture_output=True,
        )
        with psycopg2.connect(url) as conn:
            conn.autocommit = True
            conn.cursor().execute("ANALYZE")
        info = json.loads(dump.with_suffix(".json").read_text())
        info["restored_s"] = round(time.monotonic() - started, 1)
        return info
    log(f"filling at scale {scale:g} (no cached dump at {dump})")
    migrate(url, env)
    info = fill(url, scale)
    info["fill_s"] = round(time.monotonic() - started, 1)
    cache.mkdir(parents=True, exist_ok=True)
    dumped = time.monotonic()
    subprocess.run(
        [pg_bin("pg_dump"), "-Fc", "-Z", "1", "-f", str(dump) + ".tmp", url],
        check=True,
        capture_output=True,
    )
    os.replace(str(dump) + ".tmp", dump)
    info["dump_s"] = round(time.monotonic() - dumped, 1)
    info["dump_gb"] = round(dump.stat().st_size / 2**30, 2)
    dump.with_suffix(".json").write_text(json.dumps(info))
    return info


# --- the fixtures, the same in both databases ---------------------------------------------


def add_fixtures(url: str, big_owner: str, many_owner: str) -> dict[str, Any]:
    """A session of 5,000 messages (its last a user message not answered, for the claim)
    and 1,000 sessions for another user. Dated an hour ago: older than the recovery
    window, so that beat does not answer the open turn."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO md_session (session_id, user_id, title, platform, mode, intro_done,"
            " creation_date, last_message_date) VALUES (md5(random()::text), %s, 'Big', 'web',"
            " 'chat', true, now() - interval '2 hours', now() - interval '1 hour')"
            " RETURNING session_id",
            (big_owner,),
        )
        big_session = cur.fetchone()[0]
        cur.execute(
            """INSERT INTO md_message (session_id, sender, event_name, message,
                   client_message_id, message_date, creation_date, acknowledged_at,
                   delivery_attempts, last_delivery_at)
            SELECT %(sid)s, CASE WHEN i %% 2 = 1 THEN 'user' ELSE 'mojo' END,
                   CASE WHEN i %% 2 = 1 THEN 'user_message' ELSE 'mojo_message' END,
                   jsonb_build_object('text', 'Big session message ' || i),
                   CASE WHEN i %% 2 = 1 THEN 'big' || i END, t, t,
                   CASE WHEN i %% 2 = 0 THEN t END, i %% 2, CASE WHEN i %% 2 = 0 THEN t END
            FROM generate_series(1, %(n)s) i,
                 LATERAL (SELECT now() - interval '2 hours' + i * interval '1 second' AS t) d
            ORDER BY i""",
            {"sid": big_session, "n": BIG_SESSION_MESSAGES - 1},
        )
        cur.execute(
            "UPDATE md_message r SET in_reply_to_pk = u.message_pk FROM md_message u"
            " WHERE r.session_id = %(sid)s AND u.session_id = %(sid)s AND r.sender = 'mojo'"
            " AND u.message_pk = (SELECT max(message_pk) FROM md_message p"
            "   WHERE p.session_id = %(sid)s AND p.message_pk < r.message_pk)",
            {"sid": big_session},
        )
        cur.execute(
            "INSERT INTO md_message (session_id, sender, event_name, message, client_message_id,"
            " message_date, creation_date, delivery_attempts) VALUES (%s, 'user',"
            " 'user_message', '{\"text\": \"the open turn\"}', 'big-open',"
            " now() - interval '1 hour', now() - interval '1 hour', 0) RETURNING message_pk",
            (big_session,),
        )
        open_turn = cur.fetchone()[0]
        cur.execute(
            "INSERT INTO md_session (session_id, user_id, title, platform, mode, intro_done,"
            " creation_date, last_message_date)"
            " SELECT md5('many' || g || random()), %s, 'Many ' || g, 'web', 'chat', true,"
            " now() - interval '30 days', now() - interval '30 days' + g * interval '1 minute'"
            " FROM generate_series(1, %s) g",
            (many_owner, MANY_SESSIONS),
        )
    conn.close()
    return {"big_session": big_session, "open_turn_pk": open_turn}


def add_unacknowledged(url: str) -> None:
    """100,000 answers delivered once 10 s ago and never acknowledged, in sessions of
    their own (nobody joined), due for a resend now."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO md_user (user_id, email, name, password_hash, creation_date) VALUES"
            " (md5('unacked' || random()), 'unacked-' || random() || '@example.com', 'U', 'x',"
            " now()) RETURNING user_id"
        )
        owner = cur.fetchone()[0]
        cur.execute(
            "INSERT INTO md_session (session_id, user_id, mode, intro_done, creation_date,"
            " last_message_date)"
            " SELECT md5('unacked-s' || g || random()), %s, 'chat', true, now(), now()"
            " FROM generate_series(1, 1000) g RETURNING session_id",
            (owner,),
        )
        sessions = [row[0] for row in cur.fetchall()]
        cur.execute(
            """INSERT INTO md_message (session_id, sender, event_name, message, message_date,
                   creation_date, delivery_attempts, last_delivery_at)
            SELECT (%(s)s::text[])[1 + i %% 1000], 'mojo', 'mojo_message',
                   jsonb_build_object('text', 'unacknowledged ' || i),
                   now(), now(), 1, now() - interval '10 seconds' + i * interval '1 microsecond'
            FROM generate_series(1, %(n)s) i""",
            {"s": sessions, "n": UNACKED},
        )
    conn.close()


# --- the measurements ---------------------------------------------------------------------


def _timed_gets(
    targets: dict[str, tuple[str, dict[str, Any], str]], repeats: int
) -> dict[str, dict[str, Any]]:
    """GET each target (name -> url, params, token) in turn, `repeats` times after a
    warm-up: the empty and the full database's requests alternate, so that both see the
    machine in the same state."""
    sessions = {name: requests.Session() for name in targets}
    samples: dict[str, list[float]] = {name: [] for name in targets}
    for i in range(repeats + 3):
        for name, (url, params, token) in targets.items():
            started = time.perf_counter()
            response = sessions[name].get(
                url, params=params, headers={"Authorization": token}, timeout=30
            )
            took = time.perf_counter() - started
            if response.status_code != 200:
                raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:200]}")
            if i >= 3:
                samples[name].append(took)
    return {name: summary_ms(values) for name, values in samples.items()}


async def _turns_at_50(base_url: str, tag: str, sessions: int, duration_s: float) -> list:
    """`sessions` users streaming turns for `duration_s`: the turns that got a 200."""
    workload = Workload(**{**WORKLOAD.as_dict(), "duration_s": duration_s})
    async with aiohttp.ClientSession() as http:
        tokens = await register_users(http, base_url, sessions, tag)
        clients = [BackendClient(i, base_url, http, tag, tokens[i]) for i in range(sessions)]
        await asyncio.gather(*(c.setup() for c in clients))
        await run_clients(clients, workload, lambda: None, lambda: None)
        await asyncio.gather(*(c.close() for c in clients))
    return [t for c in clients for t in c.turns if t.put_status == 200]


def _turn_summary(turns: list) -> dict[str, Any]:
    return {
        "turns": len(turns),
        "answered": sum(1 for t in turns if t.message_at),
        "put_ms": summary_ms(t.put_done_at - t.sent_at for t in turns if t.put_done_at),
        "added_ttft_ms": summary_ms(
            t.first_token_at - t.sent_at - WORKLOAD.ttft_ms / 1000
            for t in turns
            if t.first_token_at
        ),
    }


def _register(base_url: str, db_url: str, name: str) -> tuple[str, str]:
    response = requests.put(
        f"{base_url}/user",
        json={
            "email": f"{name}-{time.time()}@example.com",
            "password": "data scale 123",
            "name": name,
        },
        timeout=30,
    )
    response.raise_for_status()
    token = response.json()["token"]
    me = requests.put(f"{base_url}/session", json={}, headers={"Authorization": token}, timeout=30)
    me.raise_for_status()
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT user_id FROM md_session WHERE session_id = %s", (me.json()["session_id"],)
        )
        user_id = cur.fetchone()[0]
    conn.close()
    return token, user_id


def web_start_s(stack: FullStack, log_dir: Path) -> float:
    """A new web node on this stack, from its start to its first /health 200."""
    port = free_port()
    env = {**stack.env, "PORT": str(port)}
    proc = ChildProcess.shell(f"web-start-{port}", stack.procs["web"].command, env, log_dir)
    started = time.monotonic()
    proc.start()
    try:
        wait_for(f"http://127.0.0.1:{port}/health", 60, "a new web node", [proc])
        return time.monotonic() - started
    finally:
        proc.stop()


def measure_http(urls: dict[str, str], work_dir: Path, quick: bool) -> dict[str, Any]:
    """Both stacks up at once (one per database); requests alternate between them."""
    stacks: dict[str, FullStack] = {}
    try:
        for name, url in urls.items():
            stacks[name] = start_full_stack(
                work_dir / name, {"LOG_LEVEL": "WARNING"}, database_url=url
            )
        out: dict[str, dict[str, Any]] = {}
        gets: dict[str, dict[str, tuple[str, dict[str, Any], str]]] = {
            "get_message_first": {},
            "get_message_deep": {},
            "get_session": {},
        }
        for name, stack in stacks.items():
            base = stack.base_url
            big_token, big_owner = _register(base, urls[name], "big")
            many_token, many_owner = _register(base, urls[name], "many")
            fixtures = add_fixtures(urls[name], big_owner, many_owner)
            out[name] = {"fixtures": fixtures, "many_owner": many_owner}
            sid = fixtures["big_session"]
            gets["get_message_first"][name] = (
                f"{base}/message",
                {"session_id": sid, "n_messages": 50},
                big_token,
            )
            gets["get_message_deep"][name] = (
                f"{base}/message",
                {"session_id": sid, "n_messages": 50, "offset": BIG_SESSION_MESSAGES - 100},
                big_token,
            )
            gets["get_session"][name] = (f"{base}/session", {"n_sessions": 50}, many_token)
        log("GET /message, GET /session, alternating between the databases")
        for row, targets in gets.items():
            for name, summary in _timed_gets(targets, 10 if quick else 100).items():
                out[name][row] = summary
        sessions = 10 if quick else 50
        # Half the load on each, in the order empty, full, full, empty: neither database
        # gets the machine's better or worse minutes.
        turns: dict[str, list] = {name: [] for name in stacks}
        for name in ("empty", "full", "full", "empty"):
            log(f"{name}: turns at {sessions} sessions")
            turns[name] += asyncio.run(
                _turns_at_50(
                    stacks[name].base_url,
                    f"ds{name}{time.time()}",
                    sessions,
                    3.0 if quick else 10.0,
                )
            )
        for name, done in turns.items():
            out[name]["turns"] = _turn_summary(done)
        log("web node start-up, alternating")
        starts: dict[str, list[float]] = {name: [] for name in stacks}
        for _ in range(1 if quick else 3):
            for name, stack in stacks.items():
                starts[name].append(web_start_s(stack, work_dir / name / "logs"))
        for name, values in starts.items():
            out[name]["web_start_ms"] = summary_ms(values)
        return out
    finally:
        for stack in stacks.values():
            stack.stop()


def statement_times(
    urls: dict[str, str], fixtures: dict[str, dict[str, Any]], quick: bool
) -> dict[str, dict[str, Any]]:
    """The database's own time for the GET rows' statements (client round trip included),
    the two databases alternating: what the full database costs apart from HTTP."""
    conns = {name: psycopg2.connect(url) for name, url in urls.items()}
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in urls}
    try:
        for statement in ("get_message_first", "get_message_deep", "get_session"):
            for i in range(20 if quick else 300):
                for name, conn in conns.items():
                    params = {
                        "sid": fixtures[name]["fixtures"]["big_session"],
                        "uid": fixtures[name]["many_owner"],
                    }
                    with conn.cursor() as cur:
                        started = time.perf_counter()
                        cur.execute(
                            PLANS[statement].replace(":sid", "%(sid)s").replace(":uid", "%(uid)s"),
                            params,
                        )
                        cur.fetchall()
                        took = time.perf_counter() - started
                    conn.rollback()
                    if i >= 20 or quick:
                        samples[name].setdefault(statement, []).append(took)
    finally:
        for conn in conns.values():
            conn.close()
    return {
        name: {statement: summary_ms(values) for statement, values in rows.items()}
        for name, rows in samples.items()
    }


def _explain(session: Session, sql: str, params: dict[str, Any]) -> str:
    rows = session.execute(text("EXPLAIN (ANALYZE, BUFFERS) " + sql), params).all()
    return "\n".join(row[0] for row in rows)


def measure_db(urls: dict[str, str], fixtures: dict[str, Any], quick: bool) -> dict[str, Any]:
    """The claim with history and the resend sweep's claim, in-process, the databases
    alternating sample by sample (`fixtures`: name -> the fixtures of that database)."""
    from common.queries import messages as q

    engines = {
        name: create_engine(url.replace("postgresql://", "postgresql+psycopg2://"))
        for name, url in urls.items()
    }
    out: dict[str, dict[str, Any]] = {name: {} for name in urls}
    repeats = 10 if quick else 100
    samples: dict[str, list[float]] = {name: [] for name in urls}
    for i in range(repeats + 3):
        for name, engine in engines.items():
            with engine.connect() as conn:
                now = datetime.now(UTC)
                started = time.perf_counter()
                with conn.begin():
                    rows = q.claim_turn_with_history(
                        conn,
                        fixtures[name]["open_turn_pk"],
                        "data-scale",
                        now,
                        now + timedelta(seconds=5),
                    )
                if i >= 3:
                    samples[name].append(time.perf_counter() - started)
                out[name]["claim_with_history_rows"] = len(rows)
    for name in urls:
        out[name]["claim_with_history"] = summary_ms(samples[name])
        add_unacknowledged(urls[name])
    samples = {name: [] for name in urls}
    sessions = {name: Session(engine) for name, engine in engines.items()}
    try:
        for i in range(repeats + 3):
            for name, session in sessions.items():
                started = time.perf_counter()
                rows = q.claim_due_resends(
                    session,
                    datetime.now(UTC),
                    interval=timedelta(seconds=5),
                    max_deliveries=120,
                    window=timedelta(seconds=600),
                    limit=500,
                )
                session.rollback()  # the same 100,000 due for every sample
                if i >= 3:
                    samples[name].append(time.perf_counter() - started)
                    out[name]["resend_claimed_per_batch"] = len(rows)
    finally:
        for session in sessions.values():
            session.close()
    for name in urls:
        out[name]["resend_claim_500"] = summary_ms(samples[name])
        engines[name].dispose()
    return out


PLANS = {
    "get_message_first": (
        "SELECT * FROM md_message WHERE session_id = :sid"
        " ORDER BY message_date DESC, message_pk DESC LIMIT 50"
    ),
    "get_message_deep": (
        "SELECT * FROM md_message WHERE session_id = :sid"
        " ORDER BY message_date DESC, message_pk DESC OFFSET 4900 LIMIT 50"
    ),
    "get_session": (
        "SELECT * FROM md_session WHERE user_id = :uid AND deleted_at IS NULL"
        " AND last_message_date IS NOT NULL ORDER BY last_message_date DESC, session_id"
        " LIMIT 50"
    ),
    "history": (
        "SELECT sender, message FROM md_message WHERE session_id = :sid"
        " AND message_pk <= :pk AND in_error_state IS NULL"
        " ORDER BY message_date DESC, message_pk DESC LIMIT 50"
    ),
    "resend_due": (
        "SELECT message_pk FROM md_message WHERE sender = 'mojo' AND acknowledged_at IS NULL"
        " AND in_error_state IS NULL AND delivery_attempts >= 1 AND delivery_attempts < 120"
        " AND last_delivery_at > now() - interval '600 seconds'"
        " AND last_delivery_at <= now() - interval '5 seconds'"
        " ORDER BY last_delivery_at LIMIT 500 FOR UPDATE SKIP LOCKED"
    ),
}


def plans(db_url: str, fixtures: dict[str, Any], many_owner: str) -> dict[str, str]:
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg2://"))
    params = {"sid": fixtures["big_session"], "pk": fixtures["open_turn_pk"], "uid": many_owner}
    out = {}
    with Session(engine) as session:
        for name, sql in PLANS.items():
            out[name] = _explain(session, sql, params)
            session.rollback()
    engine.dispose()
    return out


def sizes(db_url: str) -> dict[str, Any]:
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_database_size(current_database())")
        database = cur.fetchone()[0]
        cur.execute(
            "SELECT c.relname, pg_relation_size(c.oid), pg_total_relation_size(c.oid)"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 3 DESC"
        )
        tables = {
            name: {"heap_mb": round(h / 2**20, 1), "total_mb": round(t / 2**20, 1)}
            for name, h, t in cur.fetchall()
        }
        cur.execute(
            "SELECT indexrelid::regclass::text, indrelid::regclass::text,"
            " pg_relation_size(indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
            " ORDER BY 3 DESC"
        )
        indexes = {
            name: {"table": table, "mb": round(size / 2**20, 1)}
            for name, table, size in cur.fetchall()
        }
        cur.execute("SELECT count(*) FROM md_message")
        messages = cur.fetchone()[0]
    conn.close()
    return {
        "database_gb": round(database / 2**30, 2),
        "messages": messages,
        "tables": tables,
        "indexes": indexes,
    }


# --- the run ------------------------------------------------------------------------------

ROWS = (
    ("PUT /user_message p50 (50 sessions)", ("turns", "put_ms", "p50")),
    ("PUT /user_message p99 (50 sessions)", ("turns", "put_ms", "p99")),
    ("added TTFT p50 (50 sessions)", ("turns", "added_ttft_ms", "p50")),
    ("GET /message first page p50", ("get_message_first", "p50")),
    ("GET /message deep page (offset 4,900) p50", ("get_message_deep", "p50")),
    ("GET /session, user with 1,000 sessions, p50", ("get_session", "p50")),
    ("claim with history, 5,000-message session, p50", ("claim_with_history", "p50")),
    ("resend sweep: claim 500 of 100,000 due, p50", ("resend_claim_500", "p50")),
    ("web node start to /health 200, p50", ("web_start_ms", "p50")),
)


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def table(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for label, path in ROWS:
        empty, full = _get(results["empty"], path), _get(results["full"], path)
        ratio = round(full / empty, 2) if empty and full is not None else None
        rows.append(
            {
                "row": label,
                "key": path[0],
                "empty_ms": empty,
                "full_ms": full,
                "ratio": ratio,
                "met": ratio is not None and ratio <= GOAL,
            }
        )
    return rows


def markdown(results: dict[str, Any]) -> str:
    full_info, size = results["full_database"], results["sizes"]["full"]
    lines = [
        "# Cost as the data grows",
        "",
        f"The same measurements on an empty and on a full database, in the same run, through"
        f" the stack as `make run` starts it. Full: {full_info['users']:,} users,"
        f" {full_info['sessions']:,} sessions, {full_info['messages']:,} messages (scale"
        f" {results['config']['scale']:g}), {size['database_gb']} GB on disk"
        f" (empty: {results['sizes']['empty']['database_gb']} GB). Both then get a session of"
        f" {BIG_SESSION_MESSAGES:,} messages, a user with {MANY_SESSIONS:,} sessions and"
        f" {UNACKED:,} unacknowledged messages. Goal: full <= {GOAL}x empty.",
        "",
        "| measure | empty ms | full ms | full / empty | <= 1.2x |",
        "|---|---:|---:|---:|---|",
    ]
    for row in results["table"]:
        lines.append(
            f"| {row['row']} | {row['empty_ms']} | {row['full_ms']} | {row['ratio']}"
            f" | {'yes' if row['met'] else '**no**'} |"
        )
    lines += [
        "",
        "The database's own time for the GET rows' statements (sent from a client on the"
        " loopback, round trip included, the two databases alternating):",
        "",
        "| statement | empty p50 ms | full p50 ms | full / empty |",
        "|---|---:|---:|---:|",
    ]
    for statement, empty in results["empty"].get("statements", {}).items():
        full = results["full"]["statements"][statement]
        lines.append(
            f"| {statement} | {empty['p50']} | {full['p50']}"
            f" | {round(full['p50'] / empty['p50'], 2) if empty['p50'] else '-'} |"
        )
    took = full_info.get("took_s")
    how = (
        f"restored from the cached dump ({full_info.get('dump_gb')} GB) with"
        f" `pg_restore -j2` in {full_info['restored_s']} s; it had been filled in"
        f" {full_info.get('fill_s')} s ({json.dumps(took)}) and dumped in"
        f" {full_info.get('dump_s')} s"
        if "restored_s" in full_info
        else f"filled in {full_info.get('fill_s')} s ({json.dumps(took)}), dumped in"
        f" {full_info.get('dump_s')} s ({full_info.get('dump_gb')} GB)"
    )
    lines += [
        "",
        f"The full database was {how}.",
        "",
        "## Sizes on disk (full database)",
        "",
        "| table | heap MB | with indexes and TOAST MB |",
        "|---|---:|---:|",
    ]
    for name, t in list(size["tables"].items())[:6]:
        lines.append(f"| {name} | {t['heap_mb']} | {t['total_mb']} |")
    lines += ["", "| index | table | MB |", "|---|---|---:|"]
    for name, ix in size["indexes"].items():
        if ix["table"] in ("md_message", "md_session", "md_user"):
            lines.append(f"| {name} | {ix['table']} | {ix['mb']} |")
    missed = [row for row in results["table"] if not row["met"]]
    lines += ["", "## Plans (full database)", ""]
    if not missed:
        lines.append("Every row met the goal; the plans are in data_scale.json.")
    for name, plan in results["plans"].items():
        lines += [f"`{name}`:", "", "```", plan, "```", ""]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, work_dir: Path) -> dict[str, Any]:
    postgres = EmbeddedPostgres(work_dir / "postgres", free_port())
    env = devstack.child_env(devstack.Settings())
    results: dict[str, Any] = {"config": {"scale": args.scale, "quick": args.quick}}
    postgres.start()
    try:
        for name in ("ds_empty", "ds_full"):
            postgres.ensure_database(name)
        migrate(postgres.url("ds_empty"), env)
        results["full_database"] = prepare_full(
            postgres, args.scale, args.cache_dir, env, args.refill
        )
        results["sizes"] = {"full": sizes(postgres.url("ds_full"))}
        results["sizes"]["empty"] = sizes(postgres.url("ds_empty"))
        urls = {name: postgres.url(f"ds_{name}") for name in ("empty", "full")}
        http = measure_http(urls, work_dir, args.quick)
        statements = statement_times(urls, http, args.quick)
        log("the claim with history and the resend sweep, alternating")
        fixtures = {name: http[name]["fixtures"] for name in urls}
        in_process = measure_db(urls, fixtures, args.quick)
        for name in urls:
            results[name] = {**http[name], **in_process[name], "statements": statements[name]}
        results["plans"] = plans(urls["full"], http["full"]["fixtures"], http["full"]["many_owner"])
        results["table"] = table(results)
        return results
    finally:
        postgres.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.data_scale", description=__doc__)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="of 100k users/1M sessions/10M messages"
    )
    parser.add_argument("--quick", action="store_true", help="scale 0.001, few samples")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--refill", action="store_true", help="ignore the cached dump")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.scale = min(args.scale, 0.001)
    work_dir = Path(tempfile.mkdtemp(prefix="system1-data-scale-"))
    log(f"work folder {work_dir}")
    try:
        results = run(args, work_dir)
    finally:
        if not args.keep:
            subprocess.run(["rm", "-rf", str(work_dir)], check=False)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "data_scale.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (args.out / "data_scale.md").write_text(markdown(results))
    sys.stdout.write(markdown(results).split("## Sizes")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
