"""GET /metrics: Prometheus metrics that a turn moves, read from a real web node.

Counters are cluster-wide (workers write them to Redis, the web node reads them at
scrape time), so the tests compare a scrape before and after the event; other tests'
leftovers (resends, recovered turns) can only add to them, hence the `>=` where a
count could move for another reason.
"""

from __future__ import annotations

import time

import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from common.metrics import (
    KOMBU_PRIORITY_SEPARATOR,
    ClusterMetrics,
    queue_lengths,
)
from devtools.embedded import free_port
from tests.support.metrics import Samples, scrape, settled_scrape, value
from tests.support.processes import wait_until


def test_metrics_are_served_in_the_prometheus_text_format(stack):
    response = requests.get(stack.base_url + "/metrics", timeout=10)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {
        "system1_http_request_duration_seconds",
        "system1_turns_started",
        "system1_turns_finished",
        "system1_turns_failed",
        "system1_time_to_first_token_seconds",
        "system1_messages_delivered",
        "system1_messages_acknowledged",
        "system1_messages_resent",
        "system1_messages_awaiting_ack",
        "system1_queue_length",
    } <= names


def test_a_turn_moves_the_turn_and_delivery_counters(stack, api, user, session_id, connect):
    client = connect(user, session_id, ack=True)
    before = settled_scrape(stack.base_url)

    api.send_message(user, session_id, "[llm:reply=Counted.]")
    client.wait_for("mojo_message")

    def acknowledged() -> bool:
        now = scrape(stack.base_url)
        return value(now, "system1_messages_acknowledged_total", event="mojo_message") > value(
            before, "system1_messages_acknowledged_total", event="mojo_message"
        )

    wait_until(acknowledged, 10, "the ack to be counted")
    moved = (
        ("system1_turns_started_total", {}),
        ("system1_turns_finished_total", {}),
        ("system1_messages_delivered_total", {"event": "mojo_message"}),
    )

    def not_moved(after: Samples) -> list[str]:
        """The counters that have not moved yet."""
        return [
            n for n, labels in moved if value(after, n, **labels) < value(before, n, **labels) + 1
        ]

    # Each process writes its samples every FLUSH_INTERVAL_S.
    wait_until(lambda: not not_moved(scrape(stack.base_url)), 10, "the turn's counters")
    after = scrape(stack.base_url)
    assert value(after, "system1_turns_failed_total") == value(before, "system1_turns_failed_total")


def test_a_turn_whose_llm_fails_for_good_counts_as_failed(stack, api, user, session_id, connect):
    client = connect(user, session_id)
    before = settled_scrape(stack.base_url)

    api.send_message(user, session_id, "[llm:error=500]")
    client.wait_for("error", timeout=20)

    failed = value(before, "system1_turns_failed_total") + 1
    wait_until(
        lambda: value(scrape(stack.base_url), "system1_turns_failed_total") >= failed,
        10,
        "the failed turn to be counted",
    )
    assert value(scrape(stack.base_url), "system1_turns_failed_total") == failed


def test_an_unacknowledged_reply_counts_as_awaiting_an_ack(stack, api, user, session_id, connect):
    client = connect(user, session_id, ack=False)
    before = value(scrape(stack.base_url), "system1_messages_awaiting_ack")

    api.send_message(user, session_id, "[llm:reply=Not acked.]")
    client.wait_for("mojo_message")

    assert value(scrape(stack.base_url), "system1_messages_awaiting_ack") >= before + 1


def test_request_latency_is_labelled_by_route_rule_not_raw_path(stack, api, user, session_id):
    before = scrape(stack.base_url)

    api.messages(user, session_id)
    requests.get(stack.base_url + f"/no/such/{session_id}", timeout=5)

    after = scrape(stack.base_url)
    name = "system1_http_request_duration_seconds_count"
    route = {"method": "GET", "route": "/message", "status": "200"}
    assert value(after, name, **route) == value(before, name, **route) + 1
    unmatched = {"method": "GET", "route": "<unmatched>", "status": "404"}
    assert value(after, name, **unmatched) == value(before, name, **unmatched) + 1
    assert not [labels for _, labels in after if session_id in str(labels)]


def test_a_turn_observes_its_time_to_first_token(stack, api, user, session_id, connect):
    name = "system1_time_to_first_token_seconds"
    client = connect(user, session_id)
    before = settled_scrape(stack.base_url)

    api.send_message(user, session_id, "[llm:ttft_ms=300] [llm:words=3]")
    client.wait_for("mojo_message")

    def observed_sum(samples: Samples) -> float:
        return value(samples, f"{name}_sum") - value(before, f"{name}_sum")

    wait_until(
        lambda: observed_sum(scrape(stack.base_url)) >= 0.3, 10, "the observation to be written"
    )
    after = scrape(stack.base_url)
    assert value(after, f"{name}_count") == value(before, f"{name}_count") + 1
    fast = value(after, f"{name}_bucket", le="0.25") - value(before, f"{name}_bucket", le="0.25")
    assert fast == 0


def test_time_to_first_token_is_a_cluster_wide_histogram(stack, redis_url):
    name = "system1_time_to_first_token_seconds"
    before = scrape(stack.base_url)

    metrics = ClusterMetrics(redis_url)
    metrics.observe_time_to_first_token(0.3)
    metrics.flush()

    after = scrape(stack.base_url)
    assert value(after, f"{name}_count") == value(before, f"{name}_count") + 1
    assert value(after, f"{name}_sum") >= value(before, f"{name}_sum") + 0.3 - 1e-9
    for bound, moved in (("0.25", 0), ("0.5", 1), ("+Inf", 1)):
        bucket = value(after, f"{name}_bucket", le=bound) - value(
            before, f"{name}_bucket", le=bound
        )
        assert bucket == moved, bound


def test_queue_length_counts_the_tasks_waiting_in_a_broker_queue(redis_url):
    client = redis.Redis.from_url(redis_url)
    queue = "system1-test-queue-length"
    client.delete(queue, f"{queue}{KOMBU_PRIORITY_SEPARATOR}6")
    try:
        client.lpush(queue, "a", "b")
        client.lpush(f"{queue}{KOMBU_PRIORITY_SEPARATOR}6", "c")

        assert queue_lengths(client, [queue]) == {queue: 3}
    finally:
        client.delete(queue, f"{queue}{KOMBU_PRIORITY_SEPARATOR}6")


def test_both_celery_queues_are_reported(stack):
    samples = scrape(stack.base_url)

    queues = {dict(labels)["queue"] for name, labels in samples if name == "system1_queue_length"}
    assert queues == {"turns", "delivery"}


def test_a_metric_write_with_redis_down_neither_raises_nor_waits():
    unreachable = ClusterMetrics(f"redis://127.0.0.1:{free_port()}/0")

    started = time.monotonic()
    for _ in range(20):
        unreachable.increment("turns_started")
        unreachable.observe_time_to_first_token(0.1)
        unreachable.flush()

    assert time.monotonic() - started < 2
