"""`make soak` keeps working: a tiny soak (`python -m bench.soak --quick`), end to end.

The stack as `make run` starts it plus a second web node, supervised, a few clients, and
every fault kind once in under a minute. This checks the report's structure and that no
message was lost or duplicated; never how fast anything recovered.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.soak.faults import KINDS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("soak-results")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.soak",
            "--quick",
            "--sessions",
            "10",
            "--seed",
            "1",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=420,
        stdin=subprocess.DEVNULL,
    )
    assert (out / "soak.json").exists(), f"{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    return json.loads((out / "soak.json").read_text()), out


@pytest.mark.timeout(450)
def test_soak_writes_json_markdown_and_a_plot(soak: tuple[dict, Path]) -> None:
    results, out = soak
    assert (out / "soak.md").read_text().startswith("# Soak under faults")
    assert (out / "soak.png").read_bytes().startswith(b"\x89PNG")
    assert results["config"]["seed"] == 1


@pytest.mark.timeout(450)
def test_every_fault_kind_ran_and_is_reported(soak: tuple[dict, Path]) -> None:
    results, _ = soak
    assert set(results["kinds_run"]) == set(KINDS)
    for row in results["faults"]:
        assert {"answered_again_after_s", "puts_503", "resends"} <= set(row)


@pytest.mark.timeout(450)
def test_no_message_is_lost_or_duplicated_under_faults(soak: tuple[dict, Path]) -> None:
    results, _ = soak
    totals = results["totals"]
    assert totals["sent"] > 0
    assert totals["lost"] == 0, results["database"]
    assert totals["duplicated"] == 0
    assert totals["unacknowledged"] == 0
    assert results["verdict"]["passed"], results["verdict"]
