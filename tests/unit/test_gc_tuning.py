"""Garbage collection: start-up objects are exempt from collections once a process is ready.

Each check runs in a fresh interpreter: freezing this test process would change what the
other tests' collections see.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_freeze_exempts_what_exists_from_collections():
    out = run_python(
        "import gc\n"
        "from common.gc_tuning import freeze_startup_objects\n"
        "before = gc.get_freeze_count()\n"
        "freeze_startup_objects()\n"
        "print(before, gc.get_freeze_count())\n"
    )
    before, after = map(int, out.split())
    assert before == 0
    assert after > 1000


def test_cycles_made_after_the_freeze_are_still_collected():
    out = run_python(
        "import gc, weakref\n"
        "from common.gc_tuning import freeze_startup_objects\n"
        "freeze_startup_objects()\n"
        "class Node: pass\n"
        "a, b = Node(), Node()\n"
        "a.other, b.other = b, a\n"
        "alive = weakref.ref(a)\n"
        "del a, b\n"
        "gc.collect()\n"
        "print(alive() is None)\n"
    )
    assert out == "True"


def test_web_node_freezes_once_its_app_is_loaded():
    # gunicorn calls post_worker_init in the worker after loading the app.
    out = run_python(
        "import gc, runpy\n"
        "conf = runpy.run_path('web/gunicorn_conf.py')\n"
        "conf['post_worker_init'](None)\n"
        "print(gc.get_freeze_count())\n"
    )
    assert int(out) > 1000


def test_workers_freeze_when_ready():
    out = run_python(
        "import gc\n"
        "from celery.signals import worker_ready\n"
        "import worker\n"
        "assert gc.get_freeze_count() == 0\n"
        "worker_ready.send(sender=None)\n"
        "print(gc.get_freeze_count())\n"
    )
    assert int(out) > 1000
