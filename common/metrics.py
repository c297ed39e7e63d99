"""Cluster-wide metrics, shared through Redis.

Turns run in worker processes, acks are collected by web nodes, and /metrics is
served by any web node: so the counters live in Redis, where every process adds
to them, and a web node reads them when Prometheus scrapes it (web/metrics.py).

- Counters: one Redis hash, one field per counter and label set (HINCRBY).
- Time to first token: a histogram kept as one Redis hash of per-bucket counts
  plus `count` and `sum` (HINCRBY / HINCRBYFLOAT in one round trip); the scrape
  turns them into Prometheus' cumulative buckets.

Samples are added up in the process and written every FLUSH_INTERVAL_S, in one round
trip, by a background thread (and at exit): a scrape sees them that much later, and a
turn waits for no metric write (docs/performance.md, "Metrics batching").

Writing a metric never breaks a turn or a request: a Redis error is logged and the
samples dropped, and writes are skipped for a few seconds after a failure so that a
Redis outage costs each caller nothing more than the outage already does.
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

import redis

from common.redis_clients import new_redis_client
from common.settings import get_settings

log = logging.getLogger(__name__)

KEY_PREFIX = "system1:metrics"
COUNTERS_KEY = f"{KEY_PREFIX}:counters"
TTFT_KEY = f"{KEY_PREFIX}:time_to_first_token"
# Seconds from the LLM request of a turn to its first token.
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0)
# A metric write waits at most this long for Redis.
REDIS_TIMEOUT_S = 0.5
# After a failed write, writes are skipped this long (samples are dropped).
BACKOFF_S = 5.0
# Samples are written this often (a scrape sees them at most this much later).
FLUSH_INTERVAL_S = 0.5

# name -> (help, label names). Exposed as system1_<name>_total.
COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "turns_started": ("Assistant turn tasks started (LLM retries of a turn not counted).", ()),
    "turns_finished": ("Assistant turns that stored a reply.", ()),
    "turns_failed": (
        "Assistant turns that ended in error: LLM failed for good, deadline, or a crash.",
        (),
    ),
    "turns_stopped": ("Assistant turns stopped by their user (POST /assistant_turn_stop).", ()),
    "llm_fallback_calls": (
        "LLM calls answered by the fallback: the primary failed first or its breaker was open;"
        " by kind (turn, title, todos).",
        ("kind",),
    ),
    "llm_prompt_tokens": (
        "Prompt tokens of LLM calls (turns, titles, todos), by model.",
        ("model",),
    ),
    "llm_completion_tokens": (
        "Completion tokens of LLM calls (turns, titles, todos), by model.",
        ("model",),
    ),
    "messages_delivered": (
        "Finished messages sent to the web nodes for the first time.",
        ("event",),
    ),
    "messages_resent": ("Finished messages sent again because no ack came.", ("event",)),
    "messages_acknowledged": ("Finished messages acknowledged by a client.", ("event",)),
}


# Characters of the field encoding, replaced in label values (a model's name is the LLM's).
_LABEL_SEPARATORS = str.maketrans({"|": "_", ",": "_", "=": "_"})


def counter_field(name: str, labels: dict[str, str] | None = None) -> str:
    """The hash field of a counter: `name` or `name|key=value,key=value`."""
    if not labels:
        return name
    return (
        name
        + "|"
        + ",".join(
            f"{key}={str(labels[key]).translate(_LABEL_SEPARATORS)}" for key in sorted(labels)
        )
    )


def parse_counter_field(field: str) -> tuple[str, dict[str, str]]:
    name, _, encoded = field.partition("|")
    labels = dict(pair.split("=", 1) for pair in encoded.split(",") if "=" in pair)
    return name, labels


def bucket_field(upper_bound: float) -> str:
    return "le:+Inf" if math.isinf(upper_bound) else f"le:{upper_bound:g}"


class ClusterMetrics:
    """Reads and writes the shared metrics in one Redis."""

    def __init__(self, redis_url: str):
        self.client = new_redis_client(redis_url, REDIS_TIMEOUT_S, REDIS_TIMEOUT_S)
        self._skip_until = 0.0
        self._lock = threading.Lock()
        # Samples not written yet: counter fields and histogram fields -> amounts.
        self._counters: Counter[str] = Counter()
        self._ttft: Counter[str] = Counter()
        self._ttft_sum = 0.0
        self._flusher: threading.Thread | None = None

    # Writing (workers and web nodes) ------------------------------------------------

    def increment(self, name: str, amount: int = 1, **labels: str) -> None:
        """Add to a counter of COUNTERS; never raises, never waits for Redis."""
        if name not in COUNTERS:
            raise ValueError(f"unknown counter {name!r}")
        with self._lock:
            self._counters[counter_field(name, labels)] += amount
        self._ensure_flusher()

    def observe_time_to_first_token(self, seconds: float) -> None:
        """Add one observation to the time-to-first-token histogram; never raises."""
        seconds = max(0.0, float(seconds))
        bound = next((b for b in TTFT_BUCKETS if seconds <= b), math.inf)
        with self._lock:
            self._ttft[bucket_field(bound)] += 1
            self._ttft["count"] += 1
            self._ttft_sum += seconds
        self._ensure_flusher()

    def flush(self) -> None:
        """Write the samples added since the last flush, in one round trip; never raises."""
        with self._lock:
            counters, ttft, ttft_sum = self._counters, self._ttft, self._ttft_sum
            self._counters, self._ttft, self._ttft_sum = Counter(), Counter(), 0.0
        if not counters and not ttft:
            return

        def write(pipe: redis.client.Pipeline) -> None:
            for field, amount in counters.items():
                pipe.hincrby(COUNTERS_KEY, field, amount)
            for field, amount in ttft.items():
                pipe.hincrby(TTFT_KEY, field, amount)
            if ttft:
                pipe.hincrbyfloat(TTFT_KEY, "sum", ttft_sum)

        self._write(write)

    def _ensure_flusher(self) -> None:
        # Started on the first sample (a forked child starts its own: threads do not
        # survive a fork).
        if self._flusher is not None and self._flusher.is_alive():
            return
        with self._lock:
            if self._flusher is None or not self._flusher.is_alive():
                self._flusher = threading.Thread(
                    target=self._flush_forever, name="metrics-flush", daemon=True
                )
                self._flusher.start()

    def _flush_forever(self) -> None:
        while True:
            time.sleep(FLUSH_INTERVAL_S)
            self.flush()

    def _write(self, commands) -> None:
        if time.monotonic() < self._skip_until:
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            commands(pipe)
            pipe.execute()
        except redis.RedisError as exc:
            with self._lock:
                first = time.monotonic() >= self._skip_until
                self._skip_until = time.monotonic() + BACKOFF_S
            if first:
                log.warning(
                    "metrics: Redis unavailable (%s); samples dropped for %ss", exc, BACKOFF_S
                )

    # Reading (the web node's /metrics) ---------------------------------------------

    def read_counters(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """Every counter's samples by name: [(labels, value)]. Raises RedisError."""
        samples: dict[str, list[tuple[dict[str, str], float]]] = {name: [] for name in COUNTERS}
        for raw_field, raw_value in self.client.hgetall(COUNTERS_KEY).items():
            name, labels = parse_counter_field(raw_field.decode())
            if name in samples:
                samples[name].append((labels, float(raw_value)))
        return samples

    def read_time_to_first_token(self) -> tuple[list[tuple[str, float]], float]:
        """Cumulative buckets [(le, count)] including +Inf, and the sum. Raises RedisError."""
        stored = {k.decode(): float(v) for k, v in self.client.hgetall(TTFT_KEY).items()}
        buckets, running = [], 0.0
        for bound in (*TTFT_BUCKETS, math.inf):
            running += stored.get(bucket_field(bound), 0.0)
            buckets.append(("+Inf" if math.isinf(bound) else f"{bound:g}", running))
        return buckets, stored.get("sum", 0.0)


# Kombu's Redis transport keeps priorities 3, 6 and 9 of a queue in keys of their own.
KOMBU_PRIORITY_SEPARATOR = "\x06\x16"
KOMBU_PRIORITY_STEPS = (3, 6, 9)
# Kombu's Redis transport: tasks a worker has taken but not acknowledged yet.
KOMBU_UNACKED_KEY = "unacked"


def queue_lengths(client: redis.Redis, queues: Iterable[str]) -> dict[str, int]:
    """Tasks waiting in each Celery queue of a Redis broker (every priority). Raises
    RedisError."""
    names = list(queues)
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.llen(name)
        for step in KOMBU_PRIORITY_STEPS:
            pipe.llen(f"{name}{KOMBU_PRIORITY_SEPARATOR}{step}")
    lengths = pipe.execute()
    per_queue = 1 + len(KOMBU_PRIORITY_STEPS)
    return {
        name: int(sum(lengths[i * per_queue : (i + 1) * per_queue])) for i, name in enumerate(names)
    }


def unacked_tasks(client: redis.Redis) -> int:
    """Tasks held by workers and not yet acknowledged (running turns, countdowns)."""
    return int(client.hlen(KOMBU_UNACKED_KEY))


@lru_cache(maxsize=1)
def cluster_metrics() -> ClusterMetrics:
    """The process's shared metrics, in REDIS_URL."""
    metrics = ClusterMetrics(get_settings().redis_url)
    atexit.register(metrics.flush)  # what a clean stop still holds
    return metrics


def increment(name: str, amount: int = 1, **labels: str) -> None:
    """Add to a cluster-wide counter (see COUNTERS); never raises."""
    cluster_metrics().increment(name, amount, **labels)


def record_time_to_first_token(seconds: float) -> None:
    """Record how long a turn waited for its first token from the LLM; never raises."""
    cluster_metrics().observe_time_to_first_token(seconds)
