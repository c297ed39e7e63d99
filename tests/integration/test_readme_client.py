"""The README's "Connect a client" example, run as written against the stack (only the
address and the demo login are swapped for the stack's and a test user's)."""

from __future__ import annotations

import re
import subprocess

from tests.support.clients import assert_nothing_left_to_deliver, only_session
from tests.support.processes import BIN, ROOT


def readme_client_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Connect a client", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_client_example_streams_and_acknowledges_an_answer(api, user, stack):
    code = readme_client_example()
    for documented, actual in (
        ('"http://127.0.0.1:5000"', repr(stack.base_url)),
        ('"demo@system1.local"', repr(user.email)),
        ('"demo-password"', repr(user.password)),
    ):
        assert documented in code, f"the example no longer has {documented}"
        code = code.replace(documented, actual)

    result = subprocess.run(
        [str(BIN / "python"), "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    stored = re.search(r"stored as message (\d+)", result.stdout)
    assert stored, result.stdout
    session_id = only_session(api, user)
    # Before reading the history: a GET /message counts as the acknowledgment too.
    assert_nothing_left_to_deliver(stack, user, session_id)
    answer = next(
        m for m in api.messages(user, session_id) if m["message_pk"] == int(stored.group(1))
    )
    assert answer["message"]["text"] in result.stdout
