"""Reading a web node's GET /metrics as the tests compare it before and after an event."""

from __future__ import annotations

import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from common.metrics import FLUSH_INTERVAL_S

# (sample name, labels) -> value
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base_url: str) -> Samples:
    response = requests.get(base_url + "/metrics", timeout=10)
    assert response.status_code == 200, response.text
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def settled_scrape(base_url: str) -> Samples:
    """A scrape once every process has written the samples it held when called (each
    writes what it holds every FLUSH_INTERVAL_S): earlier tests' turns are all in it."""
    time.sleep(2 * FLUSH_INTERVAL_S)
    return scrape(base_url)


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 when the scrape does not have it."""
    return samples.get((name, frozenset(labels.items())), 0.0)
