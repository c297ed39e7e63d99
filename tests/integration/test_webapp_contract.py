"""The Mojodex web app's contract: exactly the requests its Next.js server sends
(webapp/pages/api/*: the raw token in Authorization, a JSON Content-type, the
query string of the browser's call with `apiName`, and `datetime`, `version`,
`platform` added by its axios client), asserting on the fields its pages read.
docs/mojodex-webapp.md lists the routes and where the web app reads them."""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from tests.support.clients import User
from tests.support.stack import WEBAPP_SECRET

VERSION = "0.4.11"
PLATFORM = "webapp"
STAMP = {"version": VERSION, "platform": PLATFORM}


class WebApp:
    """What the web app's proxy (pages/api/[apiName].js, task/, multiformdata/) sends."""

    def __init__(self, base_url: str, token: str | None = None):
        self.base_url = base_url
        self.token = token

    def _headers(self, content_type: str = "application/json") -> dict[str, str]:
        headers = {"Content-type": content_type}
        if self.token is not None:
            headers["Authorization"] = self.token
        return headers

    def _stamp(self) -> dict[str, str]:
        return {"datetime": datetime.now(UTC).isoformat(), **STAMP}

    def get(self, api_name: str, **params: Any) -> requests.Response:
        query = {**params, **self._stamp(), "apiName": api_name}
        return requests.get(
            f"{self.base_url}/{api_name}", params=query, headers=self._headers(), timeout=10
        )

    def delete(self, api_name: str, **params: Any) -> requests.Response:
        query = {**params, **self._stamp(), "apiName": api_name}
        return requests.delete(
            f"{self.base_url}/{api_name}", params=query, headers=self._headers(), timeout=10
        )

    def send(self, method: str, api_name: str, **body: Any) -> requests.Response:
        return requests.request(
            method,
            f"{self.base_url}/{api_name}",
            json={**body, **self._stamp()},
            headers=self._headers(),
            timeout=10,
        )

    def form(self, method: str, api_name: str, **fields: Any) -> requests.Response:
        """A FormData body, forwarded as multipart (user_message, user_task_execution_run)."""
        parts = {name: (None, str(value)) for name, value in {**fields, **self._stamp()}.items()}
        headers = {"Authorization": self.token} if self.token else {}
        return requests.request(
            method, f"{self.base_url}/{api_name}", files=parts, headers=headers, timeout=10
        )


def sign_up(base_url: str) -> tuple[WebApp, dict[str, Any], str]:
    """next-auth's signIn callback for the signup provider: PUT /user."""
    email = f"web-{secrets.token_hex(6)}@example.com"
    payload = {
        "email": email,
        "datetime": datetime.now(UTC).isoformat(),
        "login_method": "email_password",
        "password": "correct horse battery",
        "name": "Grace",
        **STAMP,
    }
    response = requests.put(f"{base_url}/user", json=payload, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    return WebApp(base_url, body["token"]), body, email


@pytest.fixture
def web(stack) -> WebApp:
    return sign_up(stack.base_url)[0]


def user_task_pk(web: WebApp, task_name: str = "Write an email") -> int:
    tasks = web.get("user_task").json()["user_tasks"]
    return next(t["user_task_pk"] for t in tasks if t["task_name"] == task_name)


def new_execution(web: WebApp, task_name: str = "Write an email") -> dict[str, Any]:
    response = web.send("PUT", "user_task_execution", user_task_pk=user_task_pk(web, task_name))
    assert response.status_code == 200, response.text
    return response.json()


def run(web: WebApp, execution: dict[str, Any]) -> requests.Response:
    """The Go button: services/tasks.ts executeTask, through multiformdata/."""
    inputs = [
        {"input_name": "recipient", "input_value": "Sarah, my manager"},
        {"input_name": "purpose", "input_value": "ask for a day off on Friday"},
    ]
    return web.form(
        "POST",
        "user_task_execution_run",
        user_task_execution_pk=execution["user_task_execution_pk"],
        inputs=json.dumps(inputs),
    )


def answer(web: WebApp, execution: dict[str, Any], text: str) -> requests.Response:
    """The task page's chat: services/chat.ts sendUserMessage (FormData)."""
    return web.form(
        "PUT",
        "user_message",
        session_id=execution["session_id"],
        message_id=secrets.token_hex(8),
        message_date=datetime.now(UTC).isoformat(),
        text=text,
        user_task_execution_pk=execution["user_task_execution_pk"],
        use_message_placeholder="false",
        use_draft_placeholder="false",
        origin="task",
    )


def one_execution(web: WebApp, execution: dict[str, Any]) -> dict[str, Any]:
    response = web.get(
        "user_task_execution", user_task_execution_pk=execution["user_task_execution_pk"]
    )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def drafted(web, connect):
    """An execution run through its question to its first draft, as the task page does."""
    execution = new_execution(web)
    client = connect(_user(web), execution["session_id"])
    assert run(web, execution).json() == {"success": "ok"}
    client.wait_for("mojo_message")
    assert answer(web, execution, "Friendly tone please").status_code == 200
    draft = client.wait_for("draft_message")
    return execution, draft


def _user(web: WebApp) -> User:
    """The `connect` fixture's user: only its token matters to a socket."""
    return User("", "", web.token, "")


def wait_until(check, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise TimeoutError("condition not met")


# --- Sign-up, sign-in, and what every page asks first ----------------------------------


def test_signup_answers_the_token_and_the_fields_next_auth_keeps(stack):
    _web, body, _email = sign_up(stack.base_url)

    assert body["token"]
    assert body["name"] == "Grace"
    assert body["terms_and_conditions_agreed"] is False
    assert "language_code" in body


def test_login_with_next_auths_payload_answers_a_token(stack):
    _web, _body, email = sign_up(stack.base_url)
    payload = {
        "email": email,
        "datetime": datetime.now(UTC).isoformat(),
        "login_method": "email_password",
        "password": "correct horse battery",
        **STAMP,
    }

    response = requests.post(f"{stack.base_url}/user", json=payload, timeout=10)

    assert response.status_code == 200, response.text
    assert response.json()["token"]


def test_a_user_is_onboarded_so_the_web_app_does_not_hold_them_on_onboarding(web):
    # next-auth's signIn sends only `datetime` in the query, with the raw token.
    response = requests.get(
        f"{web.base_url}/onboarding",
        params={"datetime": datetime.now(UTC).isoformat()},
        headers={"Authorization": web.token},
        timeout=10,
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"onboarding_presented": True}


def test_accepted_terms_are_stored_and_said_at_the_next_login(stack):
    web, _body, email = sign_up(stack.base_url)

    assert web.send("PUT", "terms_and_conditions").json() == {"success": True}

    login = {"email": email, "password": "correct horse battery", **STAMP}
    body = requests.post(f"{stack.base_url}/user", json=login, timeout=10).json()
    assert body["terms_and_conditions_agreed"] is True


def test_the_language_is_stored_on_the_user(stack):
    web, _body, email = sign_up(stack.base_url)

    assert web.send("POST", "language", language_code="fr").json() == {
        "success": "Language updated"
    }

    login = {"email": email, "password": "correct horse battery", **STAMP}
    assert (
        requests.post(f"{stack.base_url}/user", json=login, timeout=10).json()["language_code"]
        == "fr"
    )


def test_the_languages_to_pick_from_need_no_login(stack):
    response = WebApp(stack.base_url).get("language", language_code="en")

    assert response.status_code == 200, response.text
    assert response.json()["available_languages"]["en"] == "English"


def test_the_timezone_offset_is_accepted_as_the_browser_sends_it(web):
    # Layout's userTimezoneSet: getTimezoneOffset().toString()
    assert web.send("POST", "timezone", timezone_offset="-120").json() == {
        "success": "Timezone updated"
    }


def test_an_impossible_timezone_offset_is_a_422_naming_the_field(web):
    response = web.send("POST", "timezone", timezone_offset="100000")

    assert response.status_code == 422
    assert "timezone_offset" in response.json()["error"]


def test_purchase_says_one_active_plan_without_limits_and_nothing_to_buy(web):
    response = web.get("purchase")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["purchase_status"] == "active"
    [plan] = body["current_purchases"]
    assert plan["n_tasks_limit"] is None and plan["remaining_days"] is None
    assert "Write an email" in plan["tasks"]
    assert body["purchasable_products"] == []


def test_email_service_state_is_answered_to_the_web_app_secret(stack):
    response = requests.get(
        f"{stack.base_url}/is_email_service_configured",
        params={"datetime": datetime.now(UTC).isoformat(), **STAMP},
        headers={"Content-type": "application/json", "Authorization": WEBAPP_SECRET},
        timeout=10,
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"is_configured": False}


def test_email_service_state_refuses_a_wrong_secret(web):
    response = web.get("is_email_service_configured")

    assert response.status_code == 401
    assert "secret" in response.json()["error"]


def test_a_route_system1_does_not_serve_is_a_404_json_error(web):
    response = web.get("product_category")

    assert response.status_code == 404
    assert response.json() == {"error": "No such route."}


# --- The task list and the task page ----------------------------------------------------


def test_running_a_task_with_input_value_starts_it(web, connect):
    execution = new_execution(web)
    client = connect(_user(web), execution["session_id"])

    response = run(web, execution)

    assert response.status_code == 200, response.text
    assert response.json() == {"success": "ok"}
    assert client.wait_for("mojo_message")["text"].endswith("what tone?")


def test_the_task_list_shows_started_executions_only(web):
    never_run = new_execution(web)
    started = new_execution(web)
    run(web, started)

    listed = web.get(
        "user_task_execution", n_user_task_executions=20, offset=0, search_filter=""
    ).json()["user_task_executions"]

    pks = [e["user_task_execution_pk"] for e in listed]
    assert started["user_task_execution_pk"] in pks
    assert never_run["user_task_execution_pk"] not in pks


def test_the_task_list_filters_by_user_task_pks(web):
    email = new_execution(web, "Write an email")
    minutes = new_execution(web, "Meeting minutes")
    run(web, email)
    web.form(
        "POST",
        "user_task_execution_run",
        user_task_execution_pk=minutes["user_task_execution_pk"],
        inputs="[]",
    )

    listed = web.get(
        "user_task_execution",
        n_user_task_executions=20,
        offset=0,
        search_filter="",
        user_task_pks=f"{user_task_pk(web, 'Meeting minutes')};999999",
    ).json()["user_task_executions"]

    assert [e["user_task_execution_pk"] for e in listed] == [minutes["user_task_execution_pk"]]


def test_an_empty_user_task_pks_filter_lists_everything(web):
    started = new_execution(web)
    run(web, started)

    listed = web.get(
        "user_task_execution", n_user_task_executions=20, offset=0, user_task_pks=""
    ).json()["user_task_executions"]

    assert [e["user_task_execution_pk"] for e in listed] == [started["user_task_execution_pk"]]


def test_the_task_page_gets_the_fields_that_show_its_chat_and_counters(web):
    execution = new_execution(web)
    run(web, execution)

    page = one_execution(web, execution)

    assert page["result_chat_enabled"] is True
    assert page["n_todos"] == 0 and page["n_not_read_todos"] == 0
    assert page["working_on_todos"] is False
    assert page["step_executions"] == []
    assert page["session_id"] == execution["session_id"]
    assert page["json_inputs_values"][0]["value"] == "Sarah, my manager"


def test_draft_versions_are_read_by_their_number(web, drafted):
    execution, draft = drafted
    edit = web.send(
        "POST",
        "produced_text",
        produced_text_pk=draft["produced_text_pk"],
        production="My own version",
        title=draft["produced_text_title"],
    )
    assert edit.status_code == 200, edit.text

    first = web.get(
        "user_task_execution_produced_text",
        produced_text_version_index=1,
        user_task_execution_pk=execution["user_task_execution_pk"],
    ).json()
    second = web.get(
        "user_task_execution_produced_text",
        produced_text_version_index=2,
        user_task_execution_pk=execution["user_task_execution_pk"],
    ).json()

    assert first["produced_text_production"] == draft["produced_text"]
    assert first["produced_text_version_index"] == 1
    assert second["produced_text_production"] == "My own version"
    assert second["produced_text_pk"] == draft["produced_text_pk"]
    assert one_execution(web, execution)["produced_text_version_index"] == 2


def test_a_draft_version_that_does_not_exist_is_a_404(web, drafted):
    execution, _draft = drafted

    response = web.get(
        "user_task_execution_produced_text",
        produced_text_version_index=5,
        user_task_execution_pk=execution["user_task_execution_pk"],
    )

    assert response.status_code == 404
    assert "version 5" in response.json()["error"]


def test_the_title_pencil_renames_the_execution(web):
    execution = new_execution(web)
    run(web, execution)

    response = web.send(
        "POST",
        "user_task_execution_title",
        user_task_execution_pk=execution["user_task_execution_pk"],
        title="Day off request",
    )

    assert response.json() == {"success": True}
    assert one_execution(web, execution)["title"] == "Day off request"


def test_another_users_execution_cannot_be_renamed(web, stack):
    execution = new_execution(web)
    other = sign_up(stack.base_url)[0]

    response = other.send(
        "POST",
        "user_task_execution_title",
        user_task_execution_pk=execution["user_task_execution_pk"],
        title="Mine now",
    )

    assert response.status_code == 403


def test_deleting_an_execution_takes_it_off_the_list(web):
    execution = new_execution(web)
    run(web, execution)

    response = web.delete(
        "user_task_execution", user_task_execution_pk=execution["user_task_execution_pk"]
    )

    assert response.json() == {"user_task_execution_pk": execution["user_task_execution_pk"]}
    assert web.get("user_task_execution").json()["user_task_executions"] == []


# --- Todos --------------------------------------------------------------------------------


def _todos_of(web: WebApp, execution: dict[str, Any]) -> list[dict[str, Any]]:
    return web.get(
        "todos",
        offset=0,
        n_todos=50,
        user_task_execution_fk=execution["user_task_execution_pk"],
    ).json()["todos"]


def test_todos_appear_once_a_draft_is_written(web, drafted):
    execution, _draft = drafted

    todos = wait_until(lambda: _todos_of(web, execution))

    assert [t["description"] for t in todos] == [
        "Send the result of Write an email.",
        "Follow up on Write an email.",
    ]
    page = one_execution(web, execution)
    assert page["n_todos"] == 2 and page["n_not_read_todos"] == 2
    assert page["working_on_todos"] is False


def test_todos_are_due_in_the_users_time_zone(stack, connect):
    web = sign_up(stack.base_url)[0]
    # UTC+14: the user's day is ahead of UTC's for ten hours of the day.
    web.send("POST", "timezone", timezone_offset="-840")
    execution = new_execution(web)
    client = connect(_user(web), execution["session_id"])
    run(web, execution)
    client.wait_for("mojo_message")
    answer(web, execution, "Friendly tone please")
    client.wait_for("draft_message")

    todos = wait_until(lambda: _todos_of(web, execution))

    users_today = (datetime.now(UTC) + timedelta(minutes=840)).date()
    assert todos[0]["scheduled_date"] == (users_today + timedelta(days=1)).isoformat()


def test_the_upcoming_todos_count_what_the_user_has_not_read(web, drafted):
    execution, _draft = drafted
    wait_until(lambda: _todos_of(web, execution))

    upcoming = web.get("todos").json()
    web.send(
        "POST",
        "todos",
        mark_as_read=True,
        user_task_execution_pk=execution["user_task_execution_pk"],
    )

    assert len(upcoming["todos"]) == 2 and upcoming["n_todos_not_read"] == 2
    assert upcoming["user_has_never_done_todo"] is False
    assert web.get("todos").json()["n_todos_not_read"] == 0


def test_a_todo_is_marked_done_once(web, drafted):
    execution, _draft = drafted
    todo = wait_until(lambda: _todos_of(web, execution))[0]

    done = web.send("POST", "todos", todo_pk=todo["todo_pk"], mark_as_done=True)
    again = web.send("POST", "todos", todo_pk=todo["todo_pk"], mark_as_done=True)

    assert done.json() == {"todo_pk": todo["todo_pk"]}
    assert again.status_code == 409
    assert _todos_of(web, execution)[0]["completed"] is not None


def test_a_deleted_todo_is_gone(web, drafted):
    execution, _draft = drafted
    todo = wait_until(lambda: _todos_of(web, execution))[0]

    assert web.delete("todos", todo_pk=todo["todo_pk"]).json() == {"todo_pk": todo["todo_pk"]}

    assert todo["todo_pk"] not in [t["todo_pk"] for t in _todos_of(web, execution)]


def test_a_new_user_has_never_had_a_todo(web):
    body = web.get("todos", offset=0, n_todos=50).json()

    assert body == {"todos": [], "user_has_never_done_todo": True, "n_todos_not_read": 0}


# --- No second copy of a message the user just read ---------------------------------------


def test_a_question_read_in_the_history_is_not_sent_again_on_joining(web, connect):
    execution = new_execution(web)
    run(web, execution)  # nobody is connected: the question waits for an ack
    history = wait_until(
        lambda: [
            m
            for m in web.get("message", session_id=execution["session_id"]).json()["messages"]
            if m["sender"] == "mojo"
        ]
    )
    assert history[0]["message"]["text"].endswith("what tone?")

    client = connect(_user(web), execution["session_id"])

    # Neither the replay on joining nor a resend (every 5 s) brings it again.
    with pytest.raises(TimeoutError):
        client.wait_for("mojo_message", timeout=7)


def test_a_client_that_was_away_gets_the_question_at_once_on_joining(web, connect):
    execution = new_execution(web)
    run(web, execution)
    wait_until(lambda: one_execution(web, execution)["start_date"])
    time.sleep(1.5)  # the question is stored meanwhile; nobody reads it

    client = connect(_user(web), execution["session_id"])

    assert client.wait_for("mojo_message", timeout=5)["text"].endswith("what tone?")
