"""Rate limits, on a stack of its own with low limits and two web nodes.

Logins are limited per client address and per email tried, registrations per
address, user messages per user and per address; counters live in Redis, so
every web node shares them. Over a limit: 429 `{"error"}` with Retry-After.
With Redis down the limiter fails open instead of failing requests.

Clients take distinct loopback source addresses (127.0.0.x) to be distinct
"addresses" for the server.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from requests.adapters import HTTPAdapter

from tests.support.clients import Api, User
from tests.support.stack import Stack, isolated_stack

LIMITS = {
    "LOGIN_RATE_LIMIT": "3/minute",
    "REGISTER_RATE_LIMIT": "3/minute",
    "MESSAGE_RATE_LIMIT": "3/minute",
    "MESSAGE_ADDRESS_RATE_LIMIT": "8/minute",
}
PASSWORD = "correct horse battery"


class SourceAddressAdapter(HTTPAdapter):
    """Connects from a given local address."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


@pytest.fixture(scope="module")
def limited_stack(
    database_url: str, llm_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    directory: Path = tmp_path_factory.mktemp("rate-limits")
    stack = isolated_stack(
        database_url, llm_url, directory, "rate_limits", web_nodes=2, workers=(), **LIMITS
    )
    yield stack
    stack.stop()


@pytest.fixture(autouse=True)
def fresh_counters(limited_stack: Stack) -> None:
    """Every test starts with no request counted."""
    keys = limit_keys(limited_stack)
    if keys:
        client = redis.Redis.from_url(limited_stack.env["REDIS_URL"])
        try:
            client.delete(*keys)
        finally:
            client.close()


def limit_keys(stack: Stack) -> list[bytes]:
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    try:
        return list(client.scan_iter("LIMITS*"))
    finally:
        client.close()


_next_address = iter(range(2, 250))


@pytest.fixture
def address() -> str:
    """A loopback address no other test of this module used."""
    return f"127.0.0.{next(_next_address)}"


def client(stack: Stack, address: str, node: int = 0) -> Api:
    api = Api(stack.url(node))
    api.http.mount("http://", SourceAddressAdapter(address))
    return api


def login(api: Api, email: str, password: str = PASSWORD):
    body = {"email": email, "password": password, "login_method": "email_password"}
    return api.call("POST", "/user", json=body)


def new_email() -> str:
    return f"limited-{secrets.token_hex(6)}@example.com"


def registered(stack: Stack, address: str, count: int) -> list[User]:
    """`count` users, registered from `address` (at most the registration limit)."""
    api = client(stack, address)
    return [api.register(f"User{n}") for n in range(count)]


def assert_rate_limited(response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert "too many requests" in response.json()["error"].lower()
    assert 1 <= int(response.headers["Retry-After"]) <= 60


# --- Logins ----------------------------------------------------------------------------------


def test_logins_over_the_limit_from_one_address_get_429(limited_stack, address):
    api = client(limited_stack, address)

    answers = [login(api, new_email()).status_code for _ in range(3)]

    assert answers == [400, 400, 400]
    assert_rate_limited(login(api, new_email()))


def test_login_limit_of_an_address_leaves_other_addresses_alone(limited_stack, address):
    crowded = client(limited_stack, address)
    for _ in range(4):
        login(crowded, new_email())

    response = login(client(limited_stack, "127.0.5.1"), new_email())

    assert response.status_code == 400, response.text


def test_logins_to_one_email_from_many_addresses_get_429(limited_stack, address):
    [user] = registered(limited_stack, address, 1)
    attackers = [client(limited_stack, f"127.0.1.{n}") for n in range(1, 5)]

    answers = [login(api, user.email, "guess").status_code for api in attackers[:3]]

    assert answers == [400, 400, 400]
    assert_rate_limited(login(attackers[3], user.email, user.password))


def test_login_email_limit_ignores_case(limited_stack, address):
    [user] = registered(limited_stack, address, 1)
    attackers = [client(limited_stack, f"127.0.2.{n}") for n in range(1, 5)]

    tries = [user.email.upper(), user.email, " " + user.email]
    for api, email in zip(attackers[:3], tries, strict=True):
        login(api, email, "guess")

    assert_rate_limited(login(attackers[3], user.email.title(), user.password))


def test_the_429_says_when_to_retry(limited_stack, address):
    api = client(limited_stack, address)
    for _ in range(3):
        login(api, new_email())

    response = login(api, new_email())

    assert_rate_limited(response)
    assert "retry in" in response.json()["error"]


def test_limits_are_shared_by_every_web_node(limited_stack, address):
    first, second = client(limited_stack, address, 0), client(limited_stack, address, 1)
    login(first, new_email())
    login(second, new_email())
    login(first, new_email())

    assert_rate_limited(login(second, new_email()))


def test_an_oversized_login_is_a_413_and_counting_stays_in_redis(limited_stack, address):
    api = client(limited_stack, address)
    oversized = api.call("POST", "/user", json={"email": "a" * 2 * 1024 * 1024})

    login(api, new_email())

    assert oversized.status_code == 413
    assert limit_keys(limited_stack), "the limiter fell back to memory"


# --- Registrations ---------------------------------------------------------------------------


def test_registrations_over_the_limit_from_one_address_get_429(limited_stack, address):
    api = client(limited_stack, address)
    registered(limited_stack, address, 3)

    response = api.call(
        "PUT", "/user", json={"email": new_email(), "password": PASSWORD, "name": "One more"}
    )

    assert_rate_limited(response)


# --- User messages ---------------------------------------------------------------------------


def send(stack: Stack, address: str, user: User, session_id: str):
    return client(stack, address).send_message(user, session_id, "Hello")


def test_messages_over_the_limit_of_a_user_get_429(limited_stack, address):
    [user] = registered(limited_stack, address, 1)
    session_id = client(limited_stack, address).create_session(user)

    answers = [send(limited_stack, address, user, session_id).status_code for _ in range(3)]

    assert answers == [200, 200, 200]
    assert_rate_limited(send(limited_stack, address, user, session_id))


def test_message_limit_of_a_user_holds_from_every_address(limited_stack, address):
    [user] = registered(limited_stack, address, 1)
    session_id = client(limited_stack, address).create_session(user)
    for n in range(3):
        send(limited_stack, f"127.0.3.{n + 1}", user, session_id)

    assert_rate_limited(send(limited_stack, "127.0.3.9", user, session_id))


def test_message_limit_of_a_user_leaves_other_users_alone(limited_stack, address):
    busy, other = registered(limited_stack, address, 2)
    busy_session = client(limited_stack, address).create_session(busy)
    other_session = client(limited_stack, address).create_session(other)
    for _ in range(4):
        send(limited_stack, address, busy, busy_session)

    response = send(limited_stack, address, other, other_session)

    assert response.status_code == 200, response.text


def test_messages_over_the_limit_of_an_address_get_429(limited_stack, address):
    users = registered(limited_stack, "127.0.4.1", 3)
    sessions = [client(limited_stack, address).create_session(user) for user in users]
    # 8 messages from one address, no user over its own limit of 3.
    pairs = list(zip(users, sessions, strict=True))
    for user, session_id in pairs * 2 + pairs[:2]:
        assert send(limited_stack, address, user, session_id).status_code == 200

    assert_rate_limited(send(limited_stack, address, users[2], sessions[2]))


def test_a_refused_message_is_not_stored(limited_stack, address):
    [user] = registered(limited_stack, address, 1)
    api = client(limited_stack, address)
    session_id = api.create_session(user)
    for n in range(3):
        api.send_message(user, session_id, f"Allowed {n}")

    refused = api.send_message(user, session_id, "Refused")

    assert refused.status_code == 429
    texts = [m["message"]["text"] for m in api.messages(user, session_id) if m["sender"] == "user"]
    assert "Refused" not in texts


# --- Redis down: fail open (keep this test last: it stops the module's Redis) ------------------


def test_logins_still_work_while_redis_is_down(limited_stack, address):
    [user] = registered(limited_stack, address, 1)
    api = client(limited_stack, address)
    limited_stack.redis_server.stop()
    try:
        response = login(api, user.email)
    finally:
        limited_stack.redis_server.start()

    assert response.status_code == 200, response.text
    assert response.json()["token"]
