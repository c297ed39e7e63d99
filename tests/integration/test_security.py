"""Authentication, password storage and ownership, over a real web node.

Every authenticated route refuses a missing, garbage, foreign or expired
token with a 401 JSON error; sockets refuse the same tokens; a second user
can neither read, write, delete nor listen to the first user's resources, on
every route that names one (one test per route).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import psycopg2
import pytest
import socketio

from common.settings import DEV_JWT_SECRET
from tests.support.clients import SocketClient, User
from tests.support.documented import PUBLIC_OPERATIONS, documented_operations

UNKNOWN_SESSION = secrets.token_hex(16)


@pytest.fixture
def jwt_secret(stack) -> str:
    """The secret the stack signs tokens with."""
    return stack.env.get("JWT_SECRET") or DEV_JWT_SECRET


def make_token(secret: str, sub: Any, lifetime: timedelta = timedelta(hours=1), **extra) -> str:
    now = datetime.now(UTC)
    claims = {"sub": sub, "iat": now, "exp": now + lifetime, **extra}
    return jwt.encode(claims, secret, algorithm="HS256")


# Each bad token, built from (the stack's secret, a real user id).
BAD_TOKENS: dict[str, Callable[[str, str], str | None]] = {
    "no_token": lambda _secret, _user_id: None,
    "empty_token": lambda _secret, _user_id: "",
    "garbage_token": lambda _secret, _user_id: "not-a-jwt",
    "bearer_garbage": lambda _secret, _user_id: "Bearer not-a-jwt",
    "other_secret": lambda _secret, user_id: make_token("another-secret-" + "x" * 32, user_id),
    "expired": lambda secret, user_id: make_token(secret, user_id, lifetime=timedelta(seconds=-60)),
    "no_expiry": lambda secret, user_id: jwt.encode(
        {"sub": user_id, "iat": datetime.now(UTC)}, secret, algorithm="HS256"
    ),
    "alg_none": lambda _secret, user_id: jwt.encode(
        {"sub": user_id, "exp": datetime.now(UTC) + timedelta(hours=1)}, None, algorithm="none"
    ),
    "sub_not_a_string": lambda secret, _user_id: make_token(secret, 12345),
}

# Each authenticated route with well-formed input, so only the token can fail it.
AUTH_ROUTES: dict[str, tuple[str, str, Callable[[str], dict[str, Any]]]] = {
    "put_session": ("PUT", "/session", lambda _sid: {"json": {"platform": "test"}}),
    "get_session": ("GET", "/session", lambda _sid: {}),
    "delete_session": ("DELETE", "/session", lambda sid: {"params": {"session_id": sid}}),
    "put_user_message": (
        "PUT",
        "/user_message",
        lambda sid: {"json": {"session_id": sid, "message_id": "m-1", "text": "Hello"}},
    ),
    "get_message": ("GET", "/message", lambda sid: {"params": {"session_id": sid}}),
}


def assert_json_error(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    assert "Traceback" not in response.text
    return body["error"]


# --- REST authentication ---------------------------------------------------------------


@pytest.mark.parametrize("route", AUTH_ROUTES)
@pytest.mark.parametrize("bad_token", BAD_TOKENS)
def test_authenticated_route_refuses_bad_token_with_401(
    api, user, session_id, jwt_secret, route, bad_token
):
    method, path, build = AUTH_ROUTES[route]
    token = BAD_TOKENS[bad_token](jwt_secret, user.user_id)

    response = api.call(method, path, token, **build(session_id))

    assert_json_error(response, 401)


def test_refused_token_changes_nothing(api, user, session_id, jwt_secret):
    expired = make_token(jwt_secret, user.user_id, lifetime=timedelta(seconds=-60))
    payload = {"session_id": session_id, "message_id": "m-1", "text": "Sneaky"}

    api.call("PUT", "/user_message", expired, json=payload)
    api.call("DELETE", "/session", expired, params={"session_id": session_id})

    assert api.messages(user, session_id) == []
    assert api.send_message(user, session_id, "Still usable").status_code == 200


def test_issued_tokens_expire_after_jwt_expiry_s(stack, user, jwt_secret):
    claims = jwt.decode(user.token, jwt_secret, algorithms=["HS256"])

    assert claims["exp"] - claims["iat"] == int(stack.env.get("JWT_EXPIRY_S", 7 * 24 * 3600))


def test_expired_token_says_it_expired(api, user, jwt_secret):
    expired = make_token(jwt_secret, user.user_id, lifetime=timedelta(seconds=-60))

    error = assert_json_error(api.call("GET", "/session", expired), 401)

    assert "expired" in error.lower()


@pytest.mark.parametrize("scheme", ["Bearer", "bearer"])
def test_bearer_scheme_is_accepted_as_well_as_the_raw_token(api, user, scheme):
    response = api.call("PUT", "/session", f"{scheme} {user.token}", json={})

    assert response.status_code == 200, response.text
    assert response.json()["session_id"]


def test_raw_token_is_accepted(api, user):
    assert api.call("GET", "/session", user.token).status_code == 200


def test_token_signed_with_the_stack_secret_is_accepted(api, user, jwt_secret):
    """The tests' tokens above fail for the right reason, not a wrong secret."""
    token = make_token(jwt_secret, user.user_id)

    assert api.call("GET", "/session", token).status_code == 200


def test_token_of_an_unknown_user_is_refused_without_a_500(api, jwt_secret):
    token = make_token(jwt_secret, secrets.token_hex(16))

    response = api.call("PUT", "/session", token, json={})

    assert_json_error(response, 401)


# --- Login and registration ---------------------------------------------------------------


def register(api, email: str, password: str = "correct horse battery", name: str = "Ada"):
    return api.call("PUT", "/user", json={"email": email, "password": password, "name": name})


def login(api, email: str, password: str):
    return api.call(
        "POST",
        "/user",
        json={"email": email, "password": password, "login_method": "email_password"},
    )


def test_login_with_the_right_password_gives_a_working_token(api, user):
    response = login(api, user.email, user.password)

    assert response.status_code == 200, response.text
    token = response.json()["token"]
    assert api.call("GET", "/session", token).status_code == 200


def test_wrong_password_and_unknown_email_give_the_same_400(api, user):
    wrong_password = login(api, user.email, "not the password")
    unknown_email = login(api, f"nobody-{secrets.token_hex(6)}@example.com", user.password)

    assert_json_error(wrong_password, 400)
    assert_json_error(unknown_email, 400)
    assert wrong_password.json() == unknown_email.json()
    assert "token" not in wrong_password.json()


def test_registering_the_same_email_twice_gives_409(api, user):
    response = register(api, user.email, "another password")

    assert_json_error(response, 409)
    assert login(api, user.email, user.password).status_code == 200


def test_registering_the_same_email_in_other_case_gives_409(api, user):
    assert_json_error(register(api, user.email.upper()), 409)


@pytest.mark.parametrize("login_as", ["upper", "lower", "as_registered"])
def test_email_is_case_insensitive_at_login(api, login_as):
    email = f"Ada.Lovelace-{secrets.token_hex(4)}@Example.COM"
    assert register(api, email, "analytical engine").status_code == 200
    given = {"upper": email.upper(), "lower": email.lower(), "as_registered": email}[login_as]

    response = login(api, given, "analytical engine")

    assert response.status_code == 200, response.text


@pytest.fixture
def db_connection(database_url: str, stack):
    conn = psycopg2.connect(database_url.replace("postgresql+psycopg2://", "postgresql://"))
    yield conn
    conn.close()


def test_password_is_not_stored_in_clear(api, user, db_connection):
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT password_hash FROM md_user WHERE user_id = %s", (user.user_id,))
        (password_hash,) = cursor.fetchone()

    assert password_hash != user.password
    assert user.password not in password_hash
    assert password_hash.startswith("scrypt:")


def test_same_password_hashes_differently_for_two_users(api, user, other_user, db_connection):
    with db_connection.cursor() as cursor:
        cursor.execute(
            "SELECT password_hash FROM md_user WHERE user_id IN (%s, %s)",
            (user.user_id, other_user.user_id),
        )
        hashes = [row[0] for row in cursor.fetchall()]

    assert user.password == other_user.password
    assert len(set(hashes)) == 2


# --- Socket authentication ------------------------------------------------------------------


@pytest.mark.parametrize("bad_token", BAD_TOKENS)
def test_socket_refuses_bad_token(stack, user, jwt_secret, bad_token):
    client = SocketClient(stack.base_url, BAD_TOKENS[bad_token](jwt_secret, user.user_id))

    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            client.connect()
        assert not client.sio.connected
    finally:
        client.close()


def test_socket_refuses_auth_that_is_not_an_object(stack, user):
    client = socketio.Client(reconnection=False)
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            client.connect(
                stack.base_url, auth=user.token, transports=["websocket"], wait_timeout=10
            )
    finally:
        if client.connected:
            client.disconnect()


def test_socket_with_a_valid_token_connects(user, connect):
    client = connect(user)

    assert client.sio.connected


def test_socket_owner_joins_own_session(user, session_id, connect):
    client = connect(user)

    assert client.start_session(session_id) == {"session_id": session_id, "joined": True}


@pytest.mark.parametrize(
    "payload",
    [{}, {"session_id": ""}, {"session_id": 42}, "not an object", {"session_id": UNKNOWN_SESSION}],
    ids=["missing", "empty", "not_a_string", "payload_not_an_object", "unknown"],
)
def test_start_session_with_bad_session_id_answers_an_error(user, connect, payload):
    client = connect(user)

    answer = client.sio.call("start_session", payload, timeout=10)

    assert isinstance(answer, dict) and isinstance(answer.get("error"), str), answer


# --- Ownership --------------------------------------------------------------------------------


@dataclass
class Owned:
    """A user's resources, one of each kind a route can name by id."""

    user: User
    session_id: str
    user_task_pk: int
    user_task_execution_pk: int
    produced_text_pk: int
    # A todo of the execution, for the routes that need one (its draft takes a few seconds).
    todo_pk: int | None = None


SECRET_TEXT = "Private thought"


def _wait_for_reply(api, user: User, session_id: str) -> None:
    deadline = time.monotonic() + 20
    while not any(m["sender"] == "mojo" for m in api.messages(user, session_id)):
        assert time.monotonic() < deadline, "no assistant reply"
        time.sleep(0.2)


def _drafted_todo_pk(api, user: User, execution: dict[str, Any]) -> int:
    """Run the execution to its draft and wait for its todos: the first one's pk."""
    pk = execution["user_task_execution_pk"]
    body = {"user_task_execution_pk": pk, "inputs": []}
    assert api.call("POST", "/user_task_execution_run", user.token, json=body).ok
    _wait_for_reply(api, user, execution["session_id"])
    api.send_message(user, execution["session_id"], "Go ahead")
    deadline = time.monotonic() + 30
    while True:
        todos = api.call("GET", "/todos", user.token, params={"user_task_execution_fk": pk}).json()[
            "todos"
        ]
        if todos:
            return todos[0]["todo_pk"]
        assert time.monotonic() < deadline, "no todos"
        time.sleep(0.3)


@pytest.fixture
def owned(api, user, request) -> Owned:
    session_id = api.create_session(user)
    assert api.send_message(user, session_id, SECRET_TEXT).status_code == 200
    _wait_for_reply(api, user, session_id)  # nothing changes behind the test's back
    user_task_pk = api.call("GET", "/user_task", user.token).json()["user_tasks"][0]["user_task_pk"]
    execution = api.call(
        "PUT", "/user_task_execution", user.token, json={"user_task_pk": user_task_pk}
    ).json()
    produced = api.call(
        "POST", "/produced_text", user.token, json={"production": SECRET_TEXT, "title": "Mine"}
    ).json()
    route = getattr(request.node, "callspec", None) and request.node.callspec.params.get("route")
    needs_todo = isinstance(route, str) and route.endswith("_todo")
    return Owned(
        user,
        session_id,
        user_task_pk,
        execution["user_task_execution_pk"],
        produced["produced_text_pk"],
        _drafted_todo_pk(api, user, execution) if needs_todo else None,
    )


def owner_view(api, owned: Owned) -> dict[str, Any]:
    """Everything the owner can read; another user's request must not change it."""
    token = owned.user.token
    return {
        "messages": api.messages(owned.user, owned.session_id),
        "sessions": api.call("GET", "/session", token).json(),
        "executions": api.call("GET", "/user_task_execution", token).json(),
        "produced_texts": api.call("GET", "/produced_text", token).json(),
        "todos": api.call("GET", "/todos", token).json(),
        "user_tasks": api.call("GET", "/user_task", token).json(),
    }


# Every user route that names a resource by id, called by another user with the
# owner's id. A new route taking an id needs an entry here: see
# test_every_route_taking_an_id_has_an_ownership_case.
OWNED_ROUTES: dict[str, tuple[str, str, Callable[[Owned], dict[str, Any]]]] = {
    "get_message": ("GET", "/message", lambda o: {"params": {"session_id": o.session_id}}),
    "get_message_of_an_execution": (
        "GET",
        "/message",
        lambda o: {
            "params": {
                "session_id": o.session_id,
                "user_task_execution_pk": o.user_task_execution_pk,
            }
        },
    ),
    "put_user_message": (
        "PUT",
        "/user_message",
        lambda o: {"json": {"session_id": o.session_id, "message_id": "m-x", "text": "Injected"}},
    ),
    "delete_session": ("DELETE", "/session", lambda o: {"params": {"session_id": o.session_id}}),
    "post_assistant_turn_stop": (
        "POST",
        "/assistant_turn_stop",
        lambda o: {"json": {"session_id": o.session_id}},
    ),
    "delete_session_json_body": (
        "DELETE",
        "/session",
        lambda o: {"json": {"session_id": o.session_id}},
    ),
    "get_user_task": (
        "GET",
        "/user_task",
        lambda o: {"params": {"user_task_pk": o.user_task_pk}},
    ),
    "put_user_task_execution": (
        "PUT",
        "/user_task_execution",
        lambda o: {"json": {"user_task_pk": o.user_task_pk}},
    ),
    "get_user_task_execution": (
        "GET",
        "/user_task_execution",
        lambda o: {"params": {"user_task_execution_pk": o.user_task_execution_pk}},
    ),
    "delete_user_task_execution": (
        "DELETE",
        "/user_task_execution",
        lambda o: {"params": {"user_task_execution_pk": o.user_task_execution_pk}},
    ),
    "post_user_task_execution_run": (
        "POST",
        "/user_task_execution_run",
        lambda o: {"json": {"user_task_execution_pk": o.user_task_execution_pk, "inputs": []}},
    ),
    "get_produced_text": (
        "GET",
        "/produced_text",
        lambda o: {"params": {"produced_text_pk": o.produced_text_pk}},
    ),
    "post_produced_text": (
        "POST",
        "/produced_text",
        lambda o: {"json": {"production": "Overwritten", "produced_text_pk": o.produced_text_pk}},
    ),
    "post_produced_text_to_an_execution": (
        "POST",
        "/produced_text",
        lambda o: {
            "json": {
                "production": "Overwritten",
                "title": "Theirs",
                "user_task_execution_pk": o.user_task_execution_pk,
            }
        },
    ),
    "post_produced_text_to_a_session": (
        "POST",
        "/produced_text",
        lambda o: {
            "json": {"production": "Overwritten", "title": "Theirs", "session_id": o.session_id}
        },
    ),
    "delete_produced_text": (
        "DELETE",
        "/produced_text",
        lambda o: {"params": {"produced_text_pk": o.produced_text_pk}},
    ),
    "post_user_task_execution_title": (
        "POST",
        "/user_task_execution_title",
        lambda o: {"json": {"user_task_execution_pk": o.user_task_execution_pk, "title": "Theirs"}},
    ),
    "get_user_task_execution_produced_text": (
        "GET",
        "/user_task_execution_produced_text",
        lambda o: {
            "params": {
                "user_task_execution_pk": o.user_task_execution_pk,
                "produced_text_version_index": 1,
            }
        },
    ),
    "get_todos_of_an_execution": (
        "GET",
        "/todos",
        lambda o: {"params": {"user_task_execution_fk": o.user_task_execution_pk}},
    ),
    "post_todos_read_of_an_execution": (
        "POST",
        "/todos",
        lambda o: {
            "json": {"mark_as_read": True, "user_task_execution_pk": o.user_task_execution_pk}
        },
    ),
    "post_todos_done_todo": (
        "POST",
        "/todos",
        lambda o: {"json": {"mark_as_done": True, "todo_pk": o.todo_pk}},
    ),
    "delete_todos_todo": ("DELETE", "/todos", lambda o: {"params": {"todo_pk": o.todo_pk}}),
}


@pytest.mark.parametrize("route", OWNED_ROUTES)
def test_other_user_gets_403_and_changes_nothing(api, owned, other_user, route):
    method, path, build = OWNED_ROUTES[route]
    before = owner_view(api, owned)

    response = api.call(method, path, other_user.token, **build(owned))

    assert_json_error(response, 403)
    assert SECRET_TEXT not in response.text
    assert owner_view(api, owned) == before


def _id_fields(document: dict[str, Any], operation: dict[str, Any]) -> set[str]:
    names = {p["name"] for p in operation.get("parameters", [])}
    for media in operation.get("requestBody", {}).get("content", {}).values():
        schema = media["schema"]
        while "$ref" in schema:
            schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        names |= set(schema.get("properties", {}))
    return {name for name in names if name == "session_id" or name.endswith("_pk")}


def test_every_route_taking_an_id_has_an_ownership_case(api):
    document = api.call("GET", "/openapi.json").json()
    covered = {f"{method} {path}" for method, path, _build in OWNED_ROUTES.values()}
    taking_ids = {
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if {"token": []} in operation.get("security", []) and _id_fields(document, operation)
    }

    assert taking_ids - covered == set(), "add them to OWNED_ROUTES"


@pytest.mark.parametrize(
    "operation", [op for op in documented_operations() if op not in PUBLIC_OPERATIONS]
)
def test_every_route_but_the_public_ones_refuses_a_request_without_credentials(api, operation):
    method, path = operation.split(" ", 1)

    response = api.call(method, path, json={} if method != "GET" else None)

    assert_json_error(response, 401)


@pytest.mark.parametrize(
    ("method", "path", "build"),
    [
        ("GET", "/message", lambda sid: {"params": {"session_id": sid}}),
        (
            "PUT",
            "/user_message",
            lambda sid: {"json": {"session_id": sid, "message_id": "m-1", "text": "Hi"}},
        ),
        ("DELETE", "/session", lambda sid: {"params": {"session_id": sid}}),
    ],
    ids=["get_message", "put_user_message", "delete_session"],
)
def test_unknown_session_id_gives_404(api, user, method, path, build):
    response = api.call(method, path, user.token, **build(UNKNOWN_SESSION))

    assert_json_error(response, 404)


def test_deleted_session_gives_404(api, user, session_id):
    api.call("DELETE", "/session", user.token, params={"session_id": session_id})

    response = api.call("GET", "/message", user.token, params={"session_id": session_id})

    assert_json_error(response, 404)


def test_other_user_does_not_see_the_session_in_the_list(api, user, other_user, session_id):
    assert api.send_message(user, session_id, "Listed for me only").status_code == 200
    own = api.call("GET", "/session", user.token).json()["sessions"]
    assert session_id in [s["session_id"] for s in own]

    response = api.call("GET", "/session", other_user.token)

    assert response.status_code == 200
    assert session_id not in [s["session_id"] for s in response.json()["sessions"]]


def test_other_user_cannot_join_the_session_room(api, user, other_user, session_id, connect):
    owner = connect(user, session_id)
    intruder = connect(other_user)

    answer = intruder.start_session(session_id)

    assert isinstance(answer, dict) and isinstance(answer.get("error"), str), answer
    assert "joined" not in answer
    api.send_message(user, session_id, "For my eyes only [llm:words=5]")
    owner.wait_for("mojo_message")
    assert owner.events("user_message_reception")
    for event in ("mojo_token", "mojo_message", "user_message_reception"):
        assert intruder.events(event) == [], event


def test_deleted_session_room_cannot_be_joined(api, user, session_id, connect):
    api.call("DELETE", "/session", user.token, params={"session_id": session_id})
    client = connect(user)

    answer = client.start_session(session_id)

    assert isinstance(answer, dict) and "error" in answer, answer
