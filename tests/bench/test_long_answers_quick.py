"""`python -m bench.long_answers --quick`: bytes and events per answer are measured for
the fixed and the widening window, and every answer arrived whole. Never a speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_quick_run_measures_both_windows_and_loses_nothing(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.long_answers", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    results = json.loads((tmp_path / "long_answers.json").read_text())
    assert (tmp_path / "long_answers.md").read_text().startswith("# Long answers")
    assert set(results["modes"]) == {"fixed", "widening"}
    for rows in results["modes"].values():
        assert [row["chars"] for row in rows] == [250, 1000]
        for row in rows:
            assert row["events"] > 0 and row["bytes"] > 0
            assert row["messages_ok"] and row["last_token_is_whole_answer"]
