"""web/services/user_tasks.py and produced_texts.py in-process: executions of a user's
tasks, their runs (one turn each, queued on the real broker), and the user's edits of
produced texts as new versions."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from common.errors import BadRequest, Forbidden, NotFound, Unprocessable
from common.models import ChatSession, Message, UserTask, UserTaskExecution
from web.extensions import db
from web.services import produced_texts, user_tasks


def _summary_task_pk(user_id: str) -> int:
    listed = user_tasks.list_user_tasks(user_id, 100, 0)["user_tasks"]
    return next(t["user_task_pk"] for t in listed if t["task_name"] == "Summarize a text")


def test_an_execution_has_a_form_session_and_the_tasks_empty_inputs(user_id, make_execution):
    execution = make_execution(user_id)

    session = db.session.get(ChatSession, execution["session_id"])
    assert (session.user_id, session.mode) == (user_id, "form")
    assert [(i["input_name"], i["value"]) for i in execution["json_input"]] == [("text", None)]


def test_an_execution_of_another_users_task_is_forbidden(user_id, other_user_id):
    with pytest.raises(Forbidden):
        user_tasks.create_execution(other_user_id, _summary_task_pk(user_id))


def test_an_execution_of_an_unknown_task_is_not_found(user_id):
    with pytest.raises(NotFound):
        user_tasks.create_execution(user_id, 999_999)


def test_a_disabled_task_cannot_be_executed(user_id):
    user_task_pk = _summary_task_pk(user_id)
    db.session.get(UserTask, user_task_pk).enabled = False
    db.session.commit()
    try:
        with pytest.raises(Unprocessable):
            user_tasks.create_execution(user_id, user_task_pk)
    finally:  # the users are kept from test to test
        db.session.get(UserTask, user_task_pk).enabled = True
        db.session.commit()


def test_a_run_stores_the_inputs_starts_the_execution_and_queues_one_turn(
    user_id, make_execution, queued_turns
):
    execution = make_execution(user_id)
    pk = execution["user_task_execution_pk"]

    user_tasks.run_execution(user_id, pk, [{"input_name": "text", "value": "A long text"}])

    db.session.expire_all()
    stored = db.session.get(UserTaskExecution, pk)
    assert stored.json_inputs[0]["value"] == "A long text"
    assert stored.start_date is not None
    [run] = db.session.scalars(select(Message).where(Message.session_id == stored.session_id))
    assert run.sender == "system"
    assert "- text: A long text" in run.text
    assert queued_turns() == 1


def test_a_repeated_run_queues_no_second_turn(user_id, make_execution, queued_turns):
    pk = make_execution(user_id)["user_task_execution_pk"]
    inputs = [{"input_name": "text", "value": "A long text"}]

    user_tasks.run_execution(user_id, pk, inputs)
    user_tasks.run_execution(user_id, pk, inputs)

    assert queued_turns() == 1


def test_a_run_with_an_input_the_task_does_not_have_is_refused(
    user_id, make_execution, queued_turns
):
    pk = make_execution(user_id)["user_task_execution_pk"]

    with pytest.raises(Unprocessable, match="'tone'"):
        user_tasks.run_execution(user_id, pk, [{"input_name": "tone", "value": "dry"}])

    assert queued_turns() == 0
    assert db.session.get(UserTaskExecution, pk).start_date is None


def test_another_users_execution_cannot_be_run(user_id, other_user_id, make_execution):
    pk = make_execution(user_id)["user_task_execution_pk"]

    with pytest.raises(Forbidden):
        user_tasks.run_execution(other_user_id, pk, [])


def test_a_deleted_execution_and_its_session_are_gone(user_id, make_execution):
    execution = make_execution(user_id)
    pk = execution["user_task_execution_pk"]

    user_tasks.delete_execution(user_id, pk)

    with pytest.raises(NotFound):
        user_tasks.get_execution(user_id, pk)
    assert db.session.get(ChatSession, execution["session_id"]).deleted_at is not None
    assert user_tasks.list_executions(user_id, 10, 0, None) == {"user_task_executions": []}


def test_executions_are_found_by_the_name_of_their_task(user_id, make_execution):
    summary = make_execution(user_id)["user_task_execution_pk"]
    post = make_execution(user_id, "LinkedIn post")["user_task_execution_pk"]
    # Only started executions are listed (as Mojodex lists them).
    user_tasks.run_execution(user_id, summary, [{"input_name": "text", "value": "A text"}])
    user_tasks.run_execution(user_id, post, [{"input_name": "topic", "value": "A topic"}])

    found = user_tasks.list_executions(user_id, 10, 0, "summar")["user_task_executions"]

    assert [e["user_task_execution_pk"] for e in found] == [summary]


def test_an_edit_of_an_execution_text_creates_its_next_version(user_id, make_execution):
    pk = make_execution(user_id)["user_task_execution_pk"]
    first = produced_texts.save_user_version(user_id, "Draft one", "Title", None, pk, None)

    second = produced_texts.save_user_version(user_id, "Draft two", None, None, pk, None)

    assert second["produced_text_pk"] == first["produced_text_pk"]
    assert (first["produced_text_version_index"], second["produced_text_version_index"]) == (1, 2)
    latest = user_tasks.get_execution(user_id, pk)
    assert (latest["produced_text_production"], latest["produced_text_title"]) == (
        "Draft two",
        "Title",
    )
    # The task's output type, kept by every later version.
    assert latest["text_type"] == "summary"


def test_a_new_produced_text_needs_a_title(user_id):
    with pytest.raises(BadRequest, match="title"):
        produced_texts.save_user_version(user_id, "Untitled", None, None, None, None)


def test_another_users_produced_text_cannot_be_edited(user_id, other_user_id):
    saved = produced_texts.save_user_version(user_id, "Mine", "Mine", None, None, None)

    with pytest.raises(Forbidden):
        produced_texts.save_user_version(
            other_user_id, "Theirs now", None, saved["produced_text_pk"], None, None
        )
    assert produced_texts.get_produced_text(user_id, saved["produced_text_pk"])["production"] == (
        "Mine"
    )


def test_a_deleted_produced_text_is_not_found(user_id):
    saved = produced_texts.save_user_version(user_id, "Gone", "Gone", None, None, None)

    produced_texts.delete_produced_text(user_id, saved["produced_text_pk"])

    with pytest.raises(NotFound):
        produced_texts.get_produced_text(user_id, saved["produced_text_pk"])
