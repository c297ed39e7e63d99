"""APP_ENV=production: the web node and the flask CLI refuse to start with the
default, an empty or a short JWT_SECRET, saying why; with a real secret they run."""

from __future__ import annotations

import subprocess
import time

import pytest
import requests

from common.settings import DEV_JWT_SECRET
from devtools.embedded import free_port
from tests.support.processes import BIN, ROOT, web_node

REAL_SECRET = "0123456789abcdef" * 4
REFUSAL = "Refusing to start: JWT_SECRET must"


def production_env(stack_env: dict[str, str], secret: str | None) -> dict[str, str]:
    env = {**stack_env, "APP_ENV": "production"}
    env.pop("JWT_SECRET", None)
    if secret is not None:
        env["JWT_SECRET"] = secret
    return env


@pytest.mark.parametrize(
    "secret", [None, "", DEV_JWT_SECRET, "short"], ids=["unset", "empty", "default", "short"]
)
def test_app_creation_refuses_a_weak_secret_in_production(stack_env, secret):
    result = subprocess.run(
        [str(BIN / "python"), "-c", "from web import create_app; create_app()"],
        cwd=ROOT,
        env=production_env(stack_env, secret),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert REFUSAL in result.stderr


def test_flask_cli_refuses_the_default_secret_in_production(stack_env):
    result = subprocess.run(
        [str(BIN / "flask"), "--app", "web.wsgi", "db", "current"],
        cwd=ROOT,
        env=production_env(stack_env, None),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert REFUSAL in result.stderr


def test_web_node_exits_with_the_reason_in_production_without_a_secret(stack_env, tmp_path):
    node = web_node("web-prod", free_port(), production_env(stack_env, None), tmp_path).start()
    try:
        node.popen.wait(60)
    finally:
        node.stop()

    assert node.popen.returncode != 0
    assert REFUSAL in node.log_path.read_text()


def test_web_node_serves_in_production_with_a_real_secret(stack_env, tmp_path):
    port = free_port()
    node = web_node("web-prod", port, production_env(stack_env, REAL_SECRET), tmp_path).start()
    try:
        deadline = time.monotonic() + 60
        while True:
            assert node.running(), node.log_tail()
            try:
                response = requests.get(f"http://127.0.0.1:{port}/openapi.json", timeout=10)
                break
            except requests.RequestException:  # still booting
                assert time.monotonic() < deadline, node.log_tail()
                time.sleep(0.2)
    finally:
        node.stop()

    assert response.status_code == 200
    assert "Refusing" not in node.log_path.read_text()
