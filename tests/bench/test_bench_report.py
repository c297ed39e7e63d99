"""The benchmark's report: what its goal table and header say, from given results."""

from __future__ import annotations

import json
from pathlib import Path

from bench import report

ROOT = Path(__file__).resolve().parents[2]


def saturation_row(backend: float, minimal: float, floor: float) -> dict:
    return {
        "sessions": 50,
        "backend": {"tokens_per_s": backend},
        "minimal": {"tokens_per_s": minimal},
        "floor": {"tokens_per_s": floor},
    }


def saturation_goal(results: dict) -> dict:
    (goal,) = [g for g in report.goals(results) if g["goal"].startswith("tokens delivered")]
    return goal


def test_saturation_goal_states_the_minimal_pipelines_share_of_the_floor() -> None:
    goal = saturation_goal({"saturation": [saturation_row(15000, 30000, 45000)]})

    assert goal["measured"] == "15000 vs 45000 tokens/s = 33% (minimal pipeline 67%)"
    assert goal["met"] is False


def test_saturation_goal_is_met_from_sixty_percent_of_the_floor() -> None:
    goal = saturation_goal({"saturation": [saturation_row(27000, 30000, 45000)]})

    assert goal["met"] is True


def test_header_gives_the_cpu_calibration_at_start_and_end() -> None:
    calibration = {"start": {"cpu_ms": 10.31}, "end": {"cpu_ms": 14.2}}

    text = report._calibration(calibration)

    assert text == (
        "CPU calibration (sum(range(10**6)), median of 10): 10.31 ms at the start, "
        "14.2 ms at the end."
    )


def test_redraw_recomputes_the_goals_from_the_measurements(tmp_path: Path) -> None:
    # The committed results of the last full run, with a goal table that is out of date.
    results = json.loads((ROOT / "bench/results/bench.json").read_text())
    results["goals"] = [{"goal": "stale", "target": "-", "measured": "-", "met": True}]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(results))

    report.redraw(path)

    assert json.loads(path.read_text())["goals"] == report.goals(results)
