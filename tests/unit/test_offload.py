"""CPU-bound work off the web node's gevent loop (web/offload.py).

Each check runs in a fresh, gevent-patched interpreter, as gunicorn's gevent worker is:
while a greenlet hashes a password, a second greenlet ticks every millisecond; the ticks
counted during the hash say whether the loop ran meanwhile.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

TICKS_DURING = """
from gevent import monkey
monkey.patch_all()
import gevent
from werkzeug.security import generate_password_hash
from web.offload import off_loop
from web.services.users import PASSWORD_METHOD

ticks = 0
def tick():
    global ticks
    while True:
        gevent.sleep(0.001)
        ticks += 1
ticker = gevent.spawn(tick)
gevent.sleep(0.01)
before = ticks
{call}
print(ticks - before)
"""


def ticks_during(call: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", TICKS_DURING.format(call=call)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


def test_a_password_hashed_on_the_loop_holds_every_other_greenlet():
    # What the node did before: the reference that makes the check below mean something.
    assert ticks_during('generate_password_hash("a password", method=PASSWORD_METHOD)') == 0


def test_a_password_hashed_off_the_loop_lets_other_greenlets_run():
    assert ticks_during('off_loop(generate_password_hash, "a password", PASSWORD_METHOD)') > 0


def test_off_loop_returns_what_the_work_returns_without_gevent():
    from web.offload import off_loop

    assert off_loop(divmod, 7, 2) == (3, 1)
