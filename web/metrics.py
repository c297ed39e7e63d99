"""GET /metrics: Prometheus metrics of the whole deployment, served by any web node.

- This node's own: HTTP request latency by route rule (a prometheus-client
  Histogram in this process), and the process' CPU, memory and file descriptors.
- Cluster-wide, read at scrape time by a custom collector: the turn and delivery
  counters and the time-to-first-token histogram that workers and web nodes keep in
  Redis (common/metrics.py); messages awaiting an ack, counted in PostgreSQL; the
  length of each Celery queue and the tasks workers hold unacknowledged, read from
  the broker.

Every web node reports the same cluster-wide values: aggregate them across nodes
with `max`, not `sum`. A source that cannot be read is reported by
`system1_metrics_source_up{source=...} 0` and its metrics are left out of that scrape.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import redis
from flask import Flask, Response, g, request
from prometheus_client import (
    CollectorRegistry,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from common import metrics
from common.llm import breaker
from common.llm.providers import fallback_provider
from common.models import Message, awaiting_ack
from common.redis_clients import broker_redis
from common.settings import get_settings
from web.extensions import db

log = logging.getLogger(__name__)

# The label of requests that matched no route: never the raw path (unbounded).
UNMATCHED_ROUTE = "<unmatched>"

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

REQUEST_LATENCY = Histogram(
    "system1_http_request_duration_seconds",
    "HTTP request latency of this web node, by route rule (not raw path).",
    ("method", "route", "status"),
    registry=REGISTRY,
)


class ClusterCollector(Collector):
    """Reads the shared metrics at scrape time (inside the /metrics request)."""

    def collect(self) -> Iterator[Metric]:
        sources = GaugeMetricFamily(
            "system1_metrics_source_up",
            "Whether this scrape could read a source of cluster-wide metrics.",
            labels=("source",),
        )
        redis_ok = yield from self._from_redis()
        sources.add_metric(("redis",), 1.0 if redis_ok else 0.0)
        database_ok = yield from self._from_database()
        sources.add_metric(("database",), 1.0 if database_ok else 0.0)
        broker_ok = yield from self._from_broker()
        sources.add_metric(("broker",), 1.0 if broker_ok else 0.0)
        yield sources
        yield self._llm_providers()

    @staticmethod
    def _llm_providers() -> Metric:
        """One sample per provider and breaker state, 1 for its current state."""
        family = GaugeMetricFamily(
            "system1_llm_provider_state",
            "Each LLM provider's breaker state (1 for the current one): closed, open, half_open.",
            labels=("provider", "state"),
        )
        providers = {"primary": breaker.CLOSED}
        if fallback_provider() is not None:
            providers = {"primary": breaker.state("primary"), "fallback": breaker.CLOSED}
        for provider, current in providers.items():
            for state in (breaker.CLOSED, breaker.OPEN, breaker.HALF_OPEN):
                family.add_metric((provider, state), 1.0 if state == current else 0.0)
        return family

    def _from_redis(self) -> Iterator[Metric]:
        store = metrics.cluster_metrics()
        try:
            counters = store.read_counters()
            buckets, total = store.read_time_to_first_token()
        except redis.RedisError as exc:
            log.warning("metrics: cannot read counters from Redis: %s", exc)
            return False
        for name, samples in counters.items():
            help_text, label_names = metrics.COUNTERS[name]
            family = CounterMetricFamily(f"system1_{name}", help_text, labels=label_names)
            seen = {tuple(labels.get(key, "") for key in label_names) for labels, _ in samples}
            for labels, value in samples:
                family.add_metric([labels.get(key, "") for key in label_names], value)
            for default in _default_label_values(label_names):
                if default not in seen:  # known series show 0 before their first event
                    family.add_metric(list(default), 0.0)
            yield family
        yield HistogramMetricFamily(
            "system1_time_to_first_token_seconds",
            "Seconds from an assistant turn's LLM request to its first token.",
            buckets=buckets,
            sum_value=total,
        )
        return True

    def _from_database(self) -> Iterator[Metric]:
        try:
            # Counted on the partial index ix_md_message_awaiting_ack.
            awaiting = db.session.scalar(
                select(func.count()).select_from(Message).where(awaiting_ack())
            )
        except SQLAlchemyError as exc:
            log.warning("metrics: cannot count messages awaiting an ack: %s", exc)
            return False
        finally:
            db.session.rollback()
        yield GaugeMetricFamily(
            "system1_messages_awaiting_ack",
            "Finished assistant messages stored and not acknowledged by a client yet.",
            value=float(awaiting or 0),
        )
        return True

    def _from_broker(self) -> Iterator[Metric]:
        client = broker_redis()
        if client is None:
            return False
        settings = get_settings()
        try:
            lengths = metrics.queue_lengths(client, (settings.turn_queue, settings.delivery_queue))
            unacked = metrics.unacked_tasks(client)
        except redis.RedisError as exc:
            log.warning("metrics: cannot read queue lengths from the broker: %s", exc)
            return False
        family = GaugeMetricFamily(
            "system1_queue_length", "Tasks waiting in a Celery queue.", labels=("queue",)
        )
        for queue, length in lengths.items():
            family.add_metric((queue,), float(length))
        yield family
        yield GaugeMetricFamily(
            "system1_broker_unacked_tasks",
            "Tasks workers have taken and not acknowledged yet (running turns, countdowns).",
            value=float(unacked),
        )
        return True


def _default_label_values(label_names: tuple[str, ...]) -> list[tuple[str, ...]]:
    if not label_names:
        return [()]
    if label_names == ("event",):
        return [("mojo_message",)]
    return []


REGISTRY.register(ClusterCollector())


def metrics_response() -> Response:
    """The registry in the format the scraper asked for (Prometheus text or OpenMetrics)."""
    encoder, content_type = choose_encoder(request.headers.get("Accept"))
    return Response(encoder(REGISTRY), status=200, headers={"Content-Type": content_type})


def init_request_metrics(app: Flask) -> None:
    """Time every request of `app` by its route rule."""

    @app.before_request
    def _start_timer() -> None:
        g.metrics_started_at = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("metrics_started_at", None)
        if started is not None:
            rule = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
            REQUEST_LATENCY.labels(request.method, rule, str(response.status_code)).observe(
                time.perf_counter() - started
            )
        return response
