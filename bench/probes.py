"""Small measurements of the machine under the stack, reported next to the results."""

from __future__ import annotations

import time
from typing import Any

import psycopg2

from bench.stats import summary_ms

PROBE_TABLE = "bench_commit_probe"


def commit_latency(database_url: str, commits: int = 100) -> dict[str, Any]:
    """How long a one-row UPDATE's commit takes, waiting for the WAL flush (as every
    commit does by default) and without (`synchronous_commit = off`)."""
    connection = psycopg2.connect(database_url)
    try:
        cursor = connection.cursor()
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {PROBE_TABLE} (id int PRIMARY KEY, v int)")
        cursor.execute(f"INSERT INTO {PROBE_TABLE} VALUES (1, 0) ON CONFLICT DO NOTHING")
        connection.commit()
        results = {}
        for name, relaxed in (("synchronous", False), ("synchronous_commit_off", True)):
            samples = []
            for _ in range(commits):
                started = time.perf_counter()
                if relaxed:
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
                cursor.execute(f"UPDATE {PROBE_TABLE} SET v = v + 1 WHERE id = 1")
                connection.commit()
                samples.append(time.perf_counter() - started)
            results[name] = summary_ms(samples)
        cursor.execute(f"DROP TABLE {PROBE_TABLE}")
        connection.commit()
        return results
    finally:
        connection.close()
