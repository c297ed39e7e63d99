"""The task flow over real sockets: list tasks, create and run an execution,
answer the assistant's question, watch the draft stream, get one
draft_message, ack it, read and edit the produced text."""

from __future__ import annotations

import itertools
import json
import subprocess

import pytest

from tests.support.processes import BIN, ROOT
from tests.support.stack import BACKOFFICE_SECRET

EMAIL_INPUTS = [
    {"input_name": "recipient", "value": "Sarah, my manager"},
    {"input_name": "purpose", "value": "ask for a day off on Friday"},
]


def user_task_pk_of(api, user, task_name):
    tasks = api.call("GET", "/user_task", user.token).json()["user_tasks"]
    return next(t["user_task_pk"] for t in tasks if t["task_name"] == task_name)


@pytest.fixture
def execution(api, user):
    """A fresh execution of "Write an email"."""
    user_task_pk = user_task_pk_of(api, user, "Write an email")
    response = api.call(
        "PUT", "/user_task_execution", user.token, json={"user_task_pk": user_task_pk}
    )
    assert response.status_code == 200, response.text
    return response.json()


def run(api, user, execution, inputs=EMAIL_INPUTS):
    return api.call(
        "POST",
        "/user_task_execution_run",
        user.token,
        json={"user_task_execution_pk": execution["user_task_execution_pk"], "inputs": inputs},
    )


@pytest.fixture
def drafted(api, user, execution, connect):
    """An execution run through to its first draft_message (acknowledged)."""
    client = connect(user, execution["session_id"])
    run(api, user, execution)
    client.wait_for("mojo_message")
    api.send_message(user, execution["session_id"], "Friendly tone please")
    draft = client.wait_for("draft_message")
    return client, draft


def test_a_new_user_has_the_default_catalogue(api, user):
    tasks = api.call("GET", "/user_task", user.token).json()["user_tasks"]

    assert len(tasks) >= 5
    names = {t["task_name"] for t in tasks}
    assert {"Write an email", "Meeting minutes", "Summarize a text"} <= names
    assert all(t["enabled"] and t["task_type"] == "instruct" for t in tasks)


def test_one_user_task_by_its_pk(api, user):
    user_task_pk = user_task_pk_of(api, user, "Meeting minutes")

    task = api.call("GET", "/user_task", user.token, params={"user_task_pk": user_task_pk}).json()

    assert task["task_name"] == "Meeting minutes"
    assert task["user_task_pk"] == user_task_pk


def test_a_new_execution_has_a_session_and_the_inputs_form(execution):
    assert execution["session_id"]
    assert isinstance(execution["user_task_execution_pk"], int)
    assert [i["input_name"] for i in execution["json_input"]] == ["recipient", "purpose"]
    assert all("description_for_user" in i and i["value"] is None for i in execution["json_input"])


def test_running_an_execution_starts_it_and_the_assistant_asks_a_question(
    api, user, execution, connect
):
    client = connect(user, execution["session_id"])

    response = run(api, user, execution)

    assert response.json() == {"success": "ok"}
    start = client.wait_for("user_task_execution_start")
    assert start["user_task_execution_pk"] == execution["user_task_execution_pk"]
    assert start["start_date"]
    question = client.wait_for("mojo_message")
    assert question["text"].endswith("what tone?")
    assert question["user_task_execution_pk"] == execution["user_task_execution_pk"]
    assert client.events("mojo_token")[-1]["text"] == question["text"]
    assert client.events("draft_token") == []


def test_running_twice_starts_one_turn(api, user, execution, connect):
    client = connect(user, execution["session_id"])
    run(api, user, execution)
    run(api, user, execution)
    client.wait_for("mojo_message")

    with pytest.raises(TimeoutError):
        client.wait_for("mojo_message", timeout=3)


def test_the_answer_streams_a_growing_draft_then_one_draft_message(drafted, execution):
    client, draft = drafted

    tokens = client.events("draft_token")
    assert len(tokens) >= 2
    drafts = [t["produced_text"] for t in tokens]
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(drafts))
    assert tokens[-1]["produced_text_title"] == "Write an email"
    assert draft["produced_text"] == drafts[-1].strip()
    assert draft["produced_text_title"] == "Write an email"
    assert draft["text"] == "Here is the result."
    assert "<execution>" in draft["text_with_tags"]
    assert draft["user_task_execution_pk"] == execution["user_task_execution_pk"]
    assert draft["text_type"] == "email"
    assert isinstance(draft["produced_text_pk"], int)
    assert isinstance(draft["produced_text_version_pk"], int)
    assert len(client.events("mojo_message")) == 1  # the question only


def test_mojo_tokens_never_carry_the_tags_or_the_draft(drafted):
    client, _draft = drafted

    for token in client.events("mojo_token"):
        assert "<" not in token["text"]
        assert "Draft for" not in token["text"]


def test_an_acknowledged_draft_is_not_resent(drafted):
    client, _draft = drafted

    with pytest.raises(TimeoutError):
        client.wait_for("draft_message", timeout=7)


def test_an_unacknowledged_draft_is_resent(api, user, execution, connect):
    client = connect(user, execution["session_id"], ack=False)
    run(api, user, execution)
    client.wait_for("mojo_message")
    api.send_message(user, execution["session_id"], "Formal")
    first = client.wait_for("draft_message")

    again = client.wait_for("draft_message", timeout=10)

    assert again["produced_text_version_pk"] == first["produced_text_version_pk"]


def test_the_execution_gets_a_title(api, user, execution, connect):
    client = connect(user, execution["session_id"])
    run(api, user, execution)

    titled = client.wait_for("user_task_execution_title")

    assert titled["title"] == "Write an email: first draft"
    stored = api.call(
        "GET",
        "/user_task_execution",
        user.token,
        params={"user_task_execution_pk": execution["user_task_execution_pk"]},
    ).json()
    assert stored["title"] == titled["title"]


def test_the_produced_text_and_the_execution_show_the_draft(api, user, drafted, execution):
    _client, draft = drafted

    text = api.call(
        "GET", "/produced_text", user.token, params={"produced_text_pk": draft["produced_text_pk"]}
    ).json()
    listed = api.call("GET", "/user_task_execution", user.token).json()["user_task_executions"]

    assert text["production"] == draft["produced_text"]
    assert text["title"] == "Write an email"
    assert text["user_task_execution_fk"] == execution["user_task_execution_pk"]
    assert text["produced_text_version_index"] == 1
    mine = next(
        e for e in listed if e["user_task_execution_pk"] == execution["user_task_execution_pk"]
    )
    assert mine["produced_text_version_pk"] == draft["produced_text_version_pk"]
    assert mine["produced_text_production"] == draft["produced_text"]
    assert mine["produced_text_version_index"] == 1
    assert mine["start_date"] is not None


def test_a_user_edit_is_version_two(api, user, drafted):
    _client, draft = drafted

    saved = api.call(
        "POST",
        "/produced_text",
        user.token,
        json={"produced_text_pk": draft["produced_text_pk"], "production": "My own words."},
    ).json()

    text = api.call(
        "GET", "/produced_text", user.token, params={"produced_text_pk": draft["produced_text_pk"]}
    ).json()
    assert saved["produced_text_pk"] == draft["produced_text_pk"]
    assert saved["produced_text_version_index"] == 2
    assert text["production"] == "My own words."
    assert text["title"] == draft["produced_text_title"]


def test_asking_for_changes_adds_a_version(api, user, drafted, execution):
    client, first = drafted

    api.send_message(user, execution["session_id"], "Shorter please")
    second = client.wait_for(
        "draft_message",
        lambda d: d["produced_text_version_pk"] != first["produced_text_version_pk"],
    )

    assert second["produced_text_pk"] == first["produced_text_pk"]
    assert "Shorter please" in second["produced_text"]
    text = api.call(
        "GET", "/produced_text", user.token, params={"produced_text_pk": first["produced_text_pk"]}
    ).json()
    assert text["produced_text_version_index"] == 2


def test_messages_of_an_execution_are_listed_by_its_pk(api, user, drafted, execution):
    messages = api.messages(
        user,
        execution["session_id"],
        user_task_execution_pk=execution["user_task_execution_pk"],
    )

    assert [m["sender"] for m in messages] == ["mojo", "user", "mojo", "system"]
    assert messages[0]["message"]["produced_text_version_pk"]


def test_another_user_sees_none_of_it(api, other_user, drafted, execution):
    _client, draft = drafted
    pk = execution["user_task_execution_pk"]

    assert (
        api.call(
            "GET", "/user_task_execution", other_user.token, params={"user_task_execution_pk": pk}
        ).status_code
        == 403
    )
    assert (
        api.call(
            "GET",
            "/produced_text",
            other_user.token,
            params={"produced_text_pk": draft["produced_text_pk"]},
        ).status_code
        == 403
    )
    assert (
        api.call(
            "POST",
            "/produced_text",
            other_user.token,
            json={"produced_text_pk": draft["produced_text_pk"], "production": "hijack"},
        ).status_code
        == 403
    )
    assert (
        api.call(
            "POST",
            "/user_task_execution_run",
            other_user.token,
            json={"user_task_execution_pk": pk, "inputs": []},
        ).status_code
        == 403
    )
    listed = api.call("GET", "/user_task_execution", other_user.token).json()
    assert pk not in [e["user_task_execution_pk"] for e in listed["user_task_executions"]]
    texts = api.call("GET", "/produced_text", other_user.token).json()["produced_texts"]
    assert draft["produced_text_pk"] not in [t["produced_text_pk"] for t in texts]


def test_a_deleted_execution_is_gone(api, user, execution):
    pk = execution["user_task_execution_pk"]

    deleted = api.call(
        "DELETE", "/user_task_execution", user.token, params={"user_task_execution_pk": pk}
    )

    assert deleted.json() == {"user_task_execution_pk": pk}
    assert (
        api.call(
            "GET", "/user_task_execution", user.token, params={"user_task_execution_pk": pk}
        ).status_code
        == 404
    )


def test_run_accepts_a_form_with_inputs_as_a_json_string(api, user, execution):
    response = api.call(
        "POST",
        "/user_task_execution_run",
        user.token,
        data={
            "user_task_execution_pk": str(execution["user_task_execution_pk"]),
            "inputs": json.dumps(EMAIL_INPUTS),
        },
    )

    assert response.status_code == 200, response.text


def test_run_with_an_unknown_input_is_refused(api, user, execution):
    response = run(api, user, execution, inputs=[{"input_name": "nope", "value": "x"}])

    assert response.status_code == 422
    assert "inputs" in response.json()["error"]


def test_backoffice_needs_the_secret(api, user):
    assert api.call("GET", "/task").status_code == 401
    assert api.call("GET", "/task", user.token).status_code == 401
    tasks = api.call("GET", "/task", BACKOFFICE_SECRET).json()["tasks"]
    assert "write_email" in [t["name_for_system"] for t in tasks]


def test_backoffice_creates_a_task_every_new_user_gets(api):
    definition = {
        "name_for_system": "thank_you_note",
        "name": "Thank-you note",
        "description": "A short thank-you note.",
        "definition_for_system": "Write a thank-you note.",
        "infos_to_extract": [{"info_name": "who", "description": "Who to thank"}],
        "output_format": "A title, then the note.",
    }
    created = api.call("PUT", "/task", BACKOFFICE_SECRET, json=definition)
    assert created.status_code in (200, 409), created.text

    newcomer = api.register("Newcomer")

    names = [
        t["task_name"] for t in api.call("GET", "/user_task", newcomer.token).json()["user_tasks"]
    ]
    assert "Thank-you note" in names


def test_backoffice_updates_a_task(api):
    tasks = api.call("GET", "/task", BACKOFFICE_SECRET).json()["tasks"]
    summary = next(t for t in tasks if t["name_for_system"] == "summarize_text")
    changed = {**summary, "icon": "🧾"}

    response = api.call("POST", "/task", BACKOFFICE_SECRET, json=changed)

    assert response.status_code == 200, response.text
    assert response.json()["icon"] == "🧾"


def test_the_cli_loads_tasks_from_a_json_file(api, stack_env, tmp_path):
    catalogue = tmp_path / "extra.json"
    catalogue.write_text(
        json.dumps(
            [
                {
                    "name_for_system": "haiku",
                    "name": "Write a haiku",
                    "description": "Three lines, five-seven-five.",
                    "definition_for_system": "Write a haiku.",
                    "infos_to_extract": [{"info_name": "theme", "description": "The theme"}],
                }
            ]
        )
    )

    loaded = subprocess.run(
        [str(BIN / "flask"), "--app", "web.wsgi", "load-tasks", str(catalogue)],
        cwd=ROOT,
        env=stack_env,
        capture_output=True,
        text=True,
    )

    assert loaded.returncode == 0, loaded.stderr
    assert "haiku" in loaded.stdout
    tasks = api.call("GET", "/task", BACKOFFICE_SECRET).json()["tasks"]
    assert "haiku" in [t["name_for_system"] for t in tasks]
