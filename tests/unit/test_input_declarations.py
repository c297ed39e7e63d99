"""Input is declared next to each route (`@use_input`), never read by hand."""

from __future__ import annotations

import re
from pathlib import Path

from web.routes import ROUTES

RESOURCES_DIR = Path(__file__).resolve().parents[2] / "web" / "resources"
# Reading request fields (or guarding them with KeyError) in a handler.
BY_HAND = re.compile(
    r"request\.(json|form|args|values|data|files|get_json)\b|except\s+\(?\s*KeyError"
)
# Operations that take no input at all.
NO_INPUT = {("GET", "/health"), ("GET", "/metrics")}


def test_no_resource_reads_request_fields_by_hand():
    offenders = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted(RESOURCES_DIR.glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if BY_HAND.search(line)
    ]

    assert not offenders, "declare the input with @use_input instead:\n" + "\n".join(offenders)


def test_every_handler_that_takes_input_declares_its_model():
    undeclared = [
        f"{method} {path}"
        for resource, path in ROUTES
        for method in sorted(resource.methods)
        if (method, path) not in NO_INPUT
        and getattr(getattr(resource, method.lower()), "input_model", None) is None
    ]

    assert not undeclared, f"add @use_input(Model, location) to: {undeclared}"
