"""Bad input on every route: a 4xx JSON error naming the problem, never a 500,
never a traceback, and nothing half-written.

Mojodex clients also send forms and extra fields (datetime, platform, version):
those are accepted.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.clients import Api, User

MIB = 1024 * 1024
MOJODEX_EXTRAS = {"datetime": "now", "platform": "webapp", "version": "0.4.12"}


def assert_json_error(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str) and body["error"], body
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    return body["error"]


def new_email() -> str:
    return f"input-{secrets.token_hex(6)}@example.com"


def message_fields(sid: str, /, **changes: Any) -> dict[str, Any]:
    """Valid PUT /user_message fields; a change to None drops the field."""
    fields = {"session_id": sid, "message_id": secrets.token_hex(8), "text": "Hello"}
    fields.update(changes)
    return {k: v for k, v in fields.items() if v is not None}


def without(fields: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k != name}


# A case: (method, path, authenticated, build(session_id) -> requests kwargs,
#          expected status, words the error must contain (case-insensitive)).
Build = Callable[[str], dict[str, Any]]


def case(
    id: str, method: str, path: str, build: Build, status: int, *names: str, auth: bool = True
):
    return pytest.param(method, path, auth, build, status, names, id=id)


REGISTER = {"email": "x@example.com", "password": "long enough pw", "name": "Ada"}
LOGIN = {"email": "x@example.com", "password": "whatever", "login_method": "email_password"}

MISSING_FIELD_CASES = [
    case(
        "put_user_without_email",
        "PUT",
        "/user",
        lambda _s: {"json": without(REGISTER, "email")},
        400,
        "email",
        auth=False,
    ),
    case(
        "put_user_without_password",
        "PUT",
        "/user",
        lambda _s: {"json": without(REGISTER, "password")},
        400,
        "password",
        auth=False,
    ),
    case(
        "put_user_without_name",
        "PUT",
        "/user",
        lambda _s: {"json": without(REGISTER, "name")},
        400,
        "name",
        auth=False,
    ),
    case(
        "put_user_without_body",
        "PUT",
        "/user",
        lambda _s: {},
        400,
        "email",
        "password",
        "name",
        auth=False,
    ),
    case(
        "post_user_without_email",
        "POST",
        "/user",
        lambda _s: {"json": without(LOGIN, "email")},
        400,
        "email",
        auth=False,
    ),
    case(
        "post_user_without_password",
        "POST",
        "/user",
        lambda _s: {"json": without(LOGIN, "password")},
        400,
        "password",
        auth=False,
    ),
    case(
        "put_user_message_without_session_id",
        "PUT",
        "/user_message",
        lambda s: {"json": message_fields(s, session_id=None)},
        400,
        "session_id",
    ),
    case(
        "put_user_message_without_message_id",
        "PUT",
        "/user_message",
        lambda s: {"json": message_fields(s, message_id=None)},
        400,
        "message_id",
    ),
    case(
        "put_user_message_without_text",
        "PUT",
        "/user_message",
        lambda s: {"json": message_fields(s, text=None)},
        400,
        "text",
    ),
    case(
        "put_user_message_form_without_text",
        "PUT",
        "/user_message",
        lambda s: {"files": form(message_fields(s, text=None))},
        400,
        "text",
    ),
    case("get_message_without_session_id", "GET", "/message", lambda _s: {}, 400, "session_id"),
    case(
        "delete_session_without_session_id",
        "DELETE",
        "/session",
        lambda _s: {},
        400,
        "session_id",
    ),
]

INVALID_VALUE_CASES = [
    case(
        "put_user_email_without_at",
        "PUT",
        "/user",
        lambda _s: {"json": {**REGISTER, "email": "ada.example.com"}},
        422,
        "email",
        auth=False,
    ),
    case(
        "put_user_short_password",
        "PUT",
        "/user",
        lambda _s: {"json": {**REGISTER, "email": new_email(), "password": "short"}},
        422,
        "password",
        auth=False,
    ),
    case(
        "put_user_empty_name",
        "PUT",
        "/user",
        lambda _s: {"json": {**REGISTER, "email": new_email(), "name": ""}},
        422,
        "name",
        auth=False,
    ),
    case(
        "put_user_password_not_a_string",
        "PUT",
        "/user",
        lambda _s: {"json": {**REGISTER, "email": new_email(), "password": 12345678}},
        422,
        "password",
        auth=False,
    ),
    case(
        "post_user_unknown_login_method",
        "POST",
        "/user",
        lambda _s: {"json": {**LOGIN, "login_method": "magic"}},
        422,
        "login_method",
        auth=False,
    ),
    case(
        "put_session_platform_too_long",
        "PUT",
        "/session",
        lambda _s: {"json": {"platform": "p" * 100}},
        422,
        "platform",
    ),
    case(
        "get_session_n_sessions_abc",
        "GET",
        "/session",
        lambda _s: {"params": {"n_sessions": "abc"}},
        422,
        "n_sessions",
    ),
    case(
        "get_session_negative_offset",
        "GET",
        "/session",
        lambda _s: {"params": {"offset": "-1"}},
        422,
        "offset",
    ),
    case(
        "get_message_n_messages_abc",
        "GET",
        "/message",
        lambda s: {"params": {"session_id": s, "n_messages": "abc"}},
        422,
        "n_messages",
    ),
    case(
        "get_message_n_messages_zero",
        "GET",
        "/message",
        lambda s: {"params": {"session_id": s, "n_messages": "0"}},
        422,
        "n_messages",
    ),
    case(
        "get_message_negative_offset",
        "GET",
        "/message",
        lambda s: {"params": {"session_id": s, "offset": "-1"}},
        422,
        "offset",
    ),
    case(
        "get_message_offset_direction_sideways",
        "GET",
        "/message",
        lambda s: {"params": {"session_id": s, "offset_direction": "sideways"}},
        422,
        "offset_direction",
    ),
    case(
        "get_message_user_task_execution_pk_abc",
        "GET",
        "/message",
        lambda s: {"params": {"session_id": s, "user_task_execution_pk": "abc"}},
        422,
        "user_task_execution_pk",
    ),
    case(
        "put_user_message_origin_elsewhere",
        "PUT",
        "/user_message",
        lambda s: {"json": message_fields(s, origin="elsewhere")},
        422,
        "origin",
    ),
    case(
        "put_user_message_empty_text",
        "PUT",
        "/user_message",
        lambda s: {"json": message_fields(s, text="")},
        422,
        "text",
    ),
    case(
        "put_user_message_text_too_long",
        "PUT",
        "/user_message",
        lambda s: {"json": message_fields(s, text="a" * 20_001)},
        422,
        "text",
    ),
    case(
        "put_user_message_text_not_a_string",
        "PUT",
        "/user_message",
        lambda s: {"json": message_fields(s, text={"nested": True})},
        422,
        "text",
    ),
    case(
        "put_user_message_session_id_not_a_string",
        "PUT",
        "/user_message",
        lambda s: {"json": message_fields(s, session_id=12345)},
        422,
        "session_id",
    ),
    case(
        "put_user_message_user_task_execution_pk_abc",
        "PUT",
        "/user_message",
        lambda s: {"json": message_fields(s, user_task_execution_pk="abc")},
        422,
        "user_task_execution_pk",
    ),
    case(
        "put_user_message_form_origin_elsewhere",
        "PUT",
        "/user_message",
        lambda s: {"files": form(message_fields(s, origin="elsewhere"))},
        422,
        "origin",
    ),
    case(
        "delete_session_session_id_too_long",
        "DELETE",
        "/session",
        lambda _s: {"params": {"session_id": "s" * 65}},
        422,
        "session_id",
    ),
]

# Past PostgreSQL's bigint: refused here, not by the database (it was a 500).
HUGE = str(10**19)
INVALID_VALUE_CASES += [
    case(
        "get_message_offset_past_bigint",
        "GET",
        "/message",
        lambda s: {"params": {"session_id": s, "offset": HUGE}},
        422,
        "offset",
    ),
    case(
        "get_session_offset_past_bigint",
        "GET",
        "/session",
        lambda _s: {"params": {"offset": HUGE}},
        422,
        "offset",
    ),
]

JSON = {"Content-Type": "application/json"}

BODY_CASES = [
    case(
        "put_user_not_json_with_json_content_type",
        "PUT",
        "/user",
        lambda _s: {"data": b"{not json", "headers": dict(JSON)},
        400,
        "json",
        auth=False,
    ),
    case(
        "put_user_message_not_json_with_json_content_type",
        "PUT",
        "/user_message",
        lambda _s: {"data": b'{"session_id": ', "headers": dict(JSON)},
        400,
        "json",
    ),
    case(
        "put_user_message_invalid_utf8_json",
        "PUT",
        "/user_message",
        lambda _s: {"data": b'{"text": "\xff\xfe"}', "headers": dict(JSON)},
        400,
        "json",
    ),
    case(
        "put_user_message_json_null",
        "PUT",
        "/user_message",
        lambda _s: {"data": b"null", "headers": dict(JSON)},
        400,
    ),
    case(
        "put_user_json_array",
        "PUT",
        "/user",
        lambda _s: {"json": [REGISTER]},
        400,
        "object",
        auth=False,
    ),
    case(
        "put_user_message_json_array",
        "PUT",
        "/user_message",
        lambda s: {"json": [message_fields(s)]},
        400,
        "object",
    ),
    case(
        "delete_session_json_array",
        "DELETE",
        "/session",
        lambda s: {"json": [s]},
        400,
        "object",
    ),
    case(
        "put_user_message_json_string",
        "PUT",
        "/user_message",
        lambda _s: {"json": "hello"},
        400,
        "object",
    ),
    case(
        "put_user_text_plain",
        "PUT",
        "/user",
        lambda _s: {"data": json.dumps(REGISTER), "headers": {"Content-Type": "text/plain"}},
        415,
        "application/json",
        auth=False,
    ),
    case(
        "put_session_text_plain",
        "PUT",
        "/session",
        lambda _s: {"data": "platform=test", "headers": {"Content-Type": "text/plain"}},
        415,
        "application/json",
    ),
    case(
        "put_user_message_text_plain",
        "PUT",
        "/user_message",
        lambda s: {
            "data": json.dumps(message_fields(s)),
            "headers": {"Content-Type": "text/plain"},
        },
        415,
        "application/json",
    ),
    case(
        "put_user_message_xml",
        "PUT",
        "/user_message",
        lambda _s: {"data": "<message/>", "headers": {"Content-Type": "application/xml"}},
        415,
        "application/json",
    ),
    case(
        "put_user_over_1_mib",
        "PUT",
        "/user",
        lambda _s: {"json": {**REGISTER, "name": "a" * MIB}},
        413,
        "too large",
        auth=False,
    ),
    case(
        "put_user_message_over_1_mib",
        "PUT",
        "/user_message",
        lambda s: {"json": message_fields(s, text="a" * MIB)},
        413,
        "too large",
    ),
    case(
        "put_user_message_form_over_1_mib",
        "PUT",
        "/user_message",
        lambda s: {"files": form(message_fields(s, text="a" * MIB))},
        413,
        "too large",
    ),
    case(
        "delete_session_over_1_mib",
        "DELETE",
        "/session",
        lambda s: {"json": {"session_id": s, "padding": "a" * MIB}},
        413,
        "too large",
    ),
    # Forms only where the protocol takes them (PUT /user_message, POST /user_task_execution_run).
    case(
        "put_user_as_a_form",
        "PUT",
        "/user",
        lambda _s: {"files": form({**REGISTER, "email": new_email()})},
        415,
        "application/json",
        auth=False,
    ),
    case(
        "put_session_urlencoded",
        "PUT",
        "/session",
        lambda _s: {"data": {"platform": "test"}},
        415,
        "application/json",
    ),
]

ROUTING_CASES = [
    case("unknown_route", "GET", "/no_such_route", lambda _s: {}, 404, "route"),
    case("unknown_route_with_token", "PUT", "/sessions", lambda _s: {"json": {}}, 404, "route"),
    case("patch_session", "PATCH", "/session", lambda _s: {"json": {}}, 405, "method"),
    case("post_session", "POST", "/session", lambda _s: {"json": {}}, 405, "method"),
    case("get_user", "GET", "/user", lambda _s: {}, 405, "method", auth=False),
    case("delete_user_message", "DELETE", "/user_message", lambda _s: {}, 405, "method"),
    case("post_message", "POST", "/message", lambda _s: {"json": {}}, 405, "method"),
]


def form(fields: dict[str, Any]) -> dict[str, tuple[None, str]]:
    """multipart/form-data fields, as `requests` sends them with `files=`."""
    return {name: (None, str(value)) for name, value in fields.items()}


def send(api: Api, user: User, session_id: str, method, path, auth, build):
    return api.call(method, path, user.token if auth else None, **build(session_id))


@pytest.mark.parametrize(
    ("method", "path", "auth", "build", "status", "names"),
    MISSING_FIELD_CASES + INVALID_VALUE_CASES + BODY_CASES + ROUTING_CASES,
)
def test_bad_input_gets_a_json_error_naming_the_problem(
    api, user, session_id, method, path, auth, build, status, names
):
    response = send(api, user, session_id, method, path, auth, build)

    error = assert_json_error(response, status)
    for name in names:
        assert name.lower() in error.lower(), error


def test_wrong_method_names_the_allowed_methods(api, user):
    response = api.call("PATCH", "/session", user.token, json={})

    assert_json_error(response, 405)
    allowed = {m.strip() for m in response.headers.get("Allow", "").split(",")}
    assert {"PUT", "GET", "DELETE"} <= allowed


NUL = "nul \x00 inside"

# A NUL character in any string field (PostgreSQL cannot store it in text or JSONB).
NUL_CASES = [
    case(
        "put_user_name",
        "PUT",
        "/user",
        lambda _s: {"json": {**REGISTER, "email": new_email(), "name": NUL}},
        422,
        "name",
        auth=False,
    ),
    case(
        "put_user_email",
        "PUT",
        "/user",
        lambda _s: {"json": {**REGISTER, "email": f"a\x00{new_email()}"}},
        422,
        "email",
        auth=False,
    ),
    case(
        "post_user_email",
        "POST",
        "/user",
        lambda _s: {"json": {**LOGIN, "email": f"a\x00{new_email()}"}},
        422,
        "email",
        auth=False,
    ),
    case("put_session_platform", "PUT", "/session", lambda _s: {"json": {"platform": NUL}}, 422),
    case(
        "put_user_message_text",
        "PUT",
        "/user_message",
        lambda s: {"json": message_fields(s, text=NUL)},
        422,
        "text",
    ),
    case(
        "put_user_message_text_only_nul",
        "PUT",
        "/user_message",
        lambda s: {"json": message_fields(s, text="\x00")},
        422,
        "text",
    ),
    case(
        "put_user_message_message_id",
        "PUT",
        "/user_message",
        lambda s: {"json": message_fields(s, message_id=NUL)},
        422,
        "message_id",
    ),
    case(
        "put_user_message_session_id",
        "PUT",
        "/user_message",
        lambda s: {"json": message_fields(s, session_id=s + "\x00")},
        422,
        "session_id",
    ),
    case(
        "get_message_session_id",
        "GET",
        "/message",
        lambda s: {"params": {"session_id": s + "\x00"}},
        422,
        "session_id",
    ),
    case(
        "delete_session_session_id",
        "DELETE",
        "/session",
        lambda s: {"params": {"session_id": s + "\x00"}},
        422,
        "session_id",
    ),
    # Nested in a list of objects (stored as JSONB, which refuses it too: it was a 500).
    case(
        "post_user_task_execution_run_input_value",
        "POST",
        "/user_task_execution_run",
        lambda _s: {
            "json": {"user_task_execution_pk": 1, "inputs": [{"input_name": "a", "value": NUL}]}
        },
        422,
        "inputs.0.value",
    ),
    # A lone surrogate (valid JSON escape, no UTF-8 form: it was a 500).
    case(
        "put_session_platform_lone_surrogate",
        "PUT",
        "/session",
        lambda _s: {"data": json.dumps({"platform": "\ud800"}), "headers": dict(JSON)},
        422,
        "platform",
    ),
    case(
        "put_user_message_text_lone_surrogate",
        "PUT",
        "/user_message",
        lambda s: {"data": json.dumps(message_fields(s, text="\udfff")), "headers": dict(JSON)},
        422,
        "text",
    ),
]


@pytest.mark.parametrize(("method", "path", "auth", "build", "status", "names"), NUL_CASES)
def test_nul_character_is_a_client_error(
    api, user, session_id, method, path, auth, build, status, names
):
    response = send(api, user, session_id, method, path, auth, build)

    assert 400 <= response.status_code < 500, response.text
    error = assert_json_error(response, response.status_code)
    for name in names:
        assert name.lower() in error.lower(), error


def test_deeply_nested_json_is_a_client_error(api, user):
    depth = 100_000
    body = b'{"session_id": ' + b"[" * depth + b"]" * depth + b"}"

    response = api.call("PUT", "/user_message", user.token, data=body, headers=dict(JSON))

    assert 400 <= response.status_code < 500, response.text
    assert_json_error(response, response.status_code)


# --- Nothing half-written -----------------------------------------------------------------

REJECTED_MESSAGES = {
    "missing_text": lambda s: {"json": message_fields(s, text=None)},
    "missing_message_id": lambda s: {"json": message_fields(s, message_id=None)},
    "invalid_origin": lambda s: {"json": message_fields(s, origin="elsewhere")},
    "text_too_long": lambda s: {"json": message_fields(s, text="a" * 20_001)},
    "not_json": lambda _s: {"data": b"{oops", "headers": dict(JSON)},
    "text_plain": lambda s: {
        "data": json.dumps(message_fields(s)),
        "headers": {"Content-Type": "text/plain"},
    },
    "over_1_mib": lambda s: {"json": message_fields(s, text="a" * MIB)},
    "nul_in_text": lambda s: {"json": message_fields(s, text="nul \x00 inside")},
}


@pytest.mark.parametrize("rejection", REJECTED_MESSAGES)
def test_rejected_user_message_leaves_the_session_empty(api, user, session_id, rejection):
    build = REJECTED_MESSAGES[rejection]

    response = api.call("PUT", "/user_message", user.token, **build(session_id))

    assert response.status_code >= 400, response.text
    assert api.messages(user, session_id) == []
    listed = api.call("GET", "/session", user.token).json()["sessions"]
    assert session_id not in [s["session_id"] for s in listed]


def test_rejected_registration_creates_no_account(api):
    email = new_email()
    rejected = api.call("PUT", "/user", json={"email": email, "password": "short", "name": "Ada"})
    assert rejected.status_code == 422

    response = api.call(
        "PUT", "/user", json={"email": email, "password": "long enough pw", "name": "Ada"}
    )

    assert response.status_code == 200, response.text


# --- Forms and Mojodex's extra fields are accepted ----------------------------------------------


def test_user_message_as_multipart_form_is_stored(api, user, session_id):
    fields = message_fields(session_id, text="Sent as a form", message_id="form-1")

    response = api.call("PUT", "/user_message", user.token, files=form(fields))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"] == "Sent as a form"
    assert body["message_id"] == "form-1"
    assert isinstance(body["message_pk"], int)
    stored = api.messages(user, session_id)
    assert [m["message"]["text"] for m in stored if m["sender"] == "user"] == ["Sent as a form"]


def test_user_message_as_multipart_form_with_mojodex_extras(api, user, session_id):
    fields = message_fields(session_id, origin="home_chat", **MOJODEX_EXTRAS)

    response = api.call("PUT", "/user_message", user.token, files=form(fields))

    assert response.status_code == 200, response.text


def test_user_message_as_urlencoded_form_is_stored(api, user, session_id):
    response = api.call(
        "PUT", "/user_message", user.token, data=message_fields(session_id, text="Urlencoded")
    )

    assert response.status_code == 200, response.text
    assert response.json()["text"] == "Urlencoded"


def _register_extras(api: Api, _user: User, _session_id: str):
    fields = {"email": new_email(), "password": "long enough pw", "name": "Ada"}
    return api.call("PUT", "/user", json={**fields, **MOJODEX_EXTRAS})


def _login_extras(api: Api, user: User, _session_id: str):
    fields = {"email": user.email, "password": user.password, "login_method": "email_password"}
    return api.call("POST", "/user", json={**fields, **MOJODEX_EXTRAS})


EXTRAS_CALLS = {
    "put_user": _register_extras,
    "post_user": _login_extras,
    "put_session": lambda api, user, _s: api.call(
        "PUT", "/session", user.token, json=MOJODEX_EXTRAS
    ),
    "get_session": lambda api, user, _s: api.call(
        "GET", "/session", user.token, params=MOJODEX_EXTRAS
    ),
    "put_user_message": lambda api, user, s: api.call(
        "PUT", "/user_message", user.token, json=message_fields(s, **MOJODEX_EXTRAS)
    ),
    "put_user_message_with_message_date": lambda api, user, s: api.call(
        "PUT",
        "/user_message",
        user.token,
        json=message_fields(s, message_date="now", origin="home_chat", **MOJODEX_EXTRAS),
    ),
    "get_message": lambda api, user, s: api.call(
        "GET", "/message", user.token, params={"session_id": s, **MOJODEX_EXTRAS}
    ),
    "delete_session_query": lambda api, user, s: api.call(
        "DELETE", "/session", user.token, params={"session_id": s, **MOJODEX_EXTRAS}
    ),
    "delete_session_body": lambda api, user, s: api.call(
        "DELETE", "/session", user.token, json={"session_id": s, **MOJODEX_EXTRAS}
    ),
}


@pytest.mark.parametrize("call", EXTRAS_CALLS)
def test_mojodex_extra_fields_are_accepted(api, user, session_id, call):
    response = EXTRAS_CALLS[call](api, user, session_id)

    assert response.status_code == 200, response.text


def test_large_page_size_is_capped_not_refused(api, user, session_id):
    response = api.call(
        "GET", "/message", user.token, params={"session_id": session_id, "n_messages": "1000"}
    )

    assert response.status_code == 200, response.text
