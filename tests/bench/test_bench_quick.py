"""`make bench` keeps working: its tiny run (`python -m bench --quick`), end to end.

The quick run starts its own stack exactly as `make run` does (embedded PostgreSQL and Redis
in a temporary folder, free ports), the minimal pipeline and the scripted LLM, drives every
phase for a few seconds and writes its results. This checks what the run produced and that
no message was lost; never how fast anything was (this machine may be busy).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("floor", "minimal", "backend")
LATENCIES = ("added_ttft_ms", "last_chunk_to_message_ms", "request_to_llm_ms")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("bench-results")
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=270,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, (
        f"bench --quick failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    )
    return json.loads((out / "bench.json").read_text()), out


@pytest.mark.timeout(300)
def test_quick_run_writes_json_markdown_and_plots(quick_run: tuple[dict, Path]) -> None:
    results, out = quick_run
    assert (out / "bench.md").read_text().startswith("# System1 benchmark")
    for plot in ("latency.png", "throughput.png"):
        assert (out / plot).read_bytes().startswith(b"\x89PNG")
    assert results["machine"]["cores"] >= 1
    assert {"start", "end"} <= set(results["load_average"])
    assert [goal["goal"] for goal in results["goals"]]


@pytest.mark.timeout(300)
def test_every_level_measures_the_three_pipelines(quick_run: tuple[dict, Path]) -> None:
    results, _ = quick_run
    assert [row["sessions"] for row in results["levels"]] == results["config"]["levels"]
    for row in results["levels"] + results["saturation"]:
        for kind in KINDS:
            level = row[kind]
            assert level["turns_finished"] > 0, (row["sessions"], kind, level)
            for latency in LATENCIES:
                assert level[latency]["n"] > 0, (row["sessions"], kind, latency)
            assert level["tokens_per_s"] > 0
        backend = row["backend"]
        assert backend["put_ms"]["n"] == backend["turns_sent"]
        assert {"web", "turns", "delivery"} <= set(backend["resources"])
        assert backend["resources"]["web"]["peak_rss_mb"] > 0
        assert backend["client"]["cpu_cores"] is not None


@pytest.mark.timeout(300)
def test_no_message_is_lost_and_every_answer_is_the_right_one(
    quick_run: tuple[dict, Path],
) -> None:
    results, _ = quick_run
    for row in results["levels"] + results["saturation"]:
        for kind in KINDS:
            level = row[kind]
            assert level["lost"] == 0, (row["sessions"], kind, level)
            assert level["wrong_text"] == 0, (row["sessions"], kind, level)
            assert level["send_errors"] == 0, (row["sessions"], kind, level["errors"])
        assert row["backend"]["unacknowledged_in_db"] == 0, row["backend"]


@pytest.mark.timeout(300)
def test_idle_sockets_and_resend_load_are_measured(quick_run: tuple[dict, Path]) -> None:
    results, _ = quick_run
    idle = results["idle_sockets"]
    assert idle["connected"] == idle["sockets"] > 0
    resend = results["resend"]
    assert resend["resends_observed"] > 0
    assert resend["lateness_ms"]["n"] == resend["resends_observed"]
    assert resend["resources"]["delivery"]["peak_rss_mb"] > 0
    assert resend["redis_used_memory_mb"]["peak"] > 0
