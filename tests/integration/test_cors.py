"""CORS: browsers on other origins get nothing unless CORS_ALLOWED_ORIGINS
lists them; one setting serves REST and Socket.IO; never "*"."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import socketio

from tests.support.clients import Api
from tests.support.stack import Stack, isolated_stack

ALLOWED = "https://app.example"
FOREIGN = "https://evil.example"


@pytest.fixture(scope="module")
def cors_stack(
    database_url: str, llm_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    stack = isolated_stack(
        database_url,
        llm_url,
        tmp_path_factory.mktemp("cors"),
        "cors",
        workers=(),
        CORS_ALLOWED_ORIGINS=f"{ALLOWED}, https://other.example",
    )
    yield stack
    stack.stop()


def preflight(api: Api, origin: str, method: str = "PUT", path: str = "/session"):
    return api.call(
        "OPTIONS",
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


# --- Default: no other origin --------------------------------------------------------------


def test_by_default_a_foreign_origin_gets_no_cors_header(api):
    response = api.call("GET", "/health", headers={"Origin": FOREIGN})

    assert "Access-Control-Allow-Origin" not in response.headers


def test_by_default_a_preflight_from_a_foreign_origin_is_not_allowed(api):
    response = preflight(api, FOREIGN)

    assert "Access-Control-Allow-Origin" not in response.headers


# --- CORS_ALLOWED_ORIGINS set ---------------------------------------------------------------


def test_an_allowed_origin_is_echoed_not_a_wildcard(cors_stack):
    response = Api(cors_stack.base_url).call("GET", "/health", headers={"Origin": ALLOWED})

    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED


def test_an_origin_that_is_not_listed_gets_no_cors_header(cors_stack):
    response = Api(cors_stack.base_url).call("GET", "/health", headers={"Origin": FOREIGN})

    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_preflight_from_an_allowed_origin_may_send_the_token(cors_stack):
    response = preflight(Api(cors_stack.base_url), ALLOWED)

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()
    assert "PUT" in response.headers["Access-Control-Allow-Methods"]


def test_an_allowed_origin_can_read_retry_after(cors_stack):
    response = Api(cors_stack.base_url).call("GET", "/health", headers={"Origin": ALLOWED})

    assert "retry-after" in response.headers["Access-Control-Expose-Headers"].lower()


# Long-polling: websocket-client would send its own Origin header beside ours.


def test_the_same_setting_admits_the_origin_on_socketio(cors_stack):
    user = Api(cors_stack.base_url).register("Cors")
    client = socketio.Client(reconnection=False)
    try:
        client.connect(
            cors_stack.base_url,
            auth={"token": user.token},
            headers={"Origin": ALLOWED},
            transports=["polling"],
            wait_timeout=10,
        )
        assert client.connected
    finally:
        client.disconnect()


def test_socketio_refuses_an_origin_that_is_not_listed(cors_stack):
    user = Api(cors_stack.base_url).register("Cors")
    client = socketio.Client(reconnection=False)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            client.connect(
                cors_stack.base_url,
                auth={"token": user.token},
                headers={"Origin": FOREIGN},
                transports=["polling"],
                wait_timeout=10,
            )
    finally:
        if client.connected:
            client.disconnect()
