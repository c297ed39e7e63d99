"""`python -m bench.data_scale --quick`: the empty and the (tiny) full database are both
measured on every row, the fill is cached as a dump and restored on a rerun, and sizes
are reported. Structure only: never a speed, never the 1.2x goal (this machine may be
busy, and a scale of 0.001 says nothing about 10 million messages)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(cache: Path, out: Path) -> dict:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.data_scale",
            "--quick",
            "--cache-dir",
            str(cache),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return json.loads((out / "data_scale.json").read_text())


@pytest.mark.timeout(900)
def test_quick_run_measures_every_row_and_reuses_its_dump(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _run(cache, tmp_path / "first")
    assert (tmp_path / "first" / "data_scale.md").read_text().startswith("# Cost as")
    assert "fill_s" in first["full_database"]
    assert "restored_s" not in first["full_database"]
    assert list(cache.glob("*.dump"))
    for row in first["table"]:
        assert row["empty_ms"] and row["full_ms"], row
    assert first["sizes"]["full"]["messages"] > first["sizes"]["empty"]["messages"]
    assert first["sizes"]["full"]["indexes"]
    assert first["full"]["turns"]["answered"] == first["full"]["turns"]["turns"] > 0

    second = _run(cache, tmp_path / "second")
    assert "restored_s" in second["full_database"]
