"""web/services/users.py and sessions.py in-process: registration and login, and the
chat sessions a user owns."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from common.errors import BadRequest, Conflict, Forbidden, NotFound
from common.models import Task, UserTask
from web.auth import authenticated_user_id
from web.extensions import db
from web.services import sessions, users
from web.services.messages import receive_user_message

PASSWORD = "correct horse battery"


def test_a_registered_user_gets_every_default_task_of_the_catalogue():
    registered = users.register("grace@example.net", PASSWORD, "Grace", "en")

    enabled = db.session.scalar(
        select(func.count()).where(UserTask.user_id == registered["user_id"], UserTask.enabled)
    )
    assert enabled == db.session.scalar(select(func.count()).where(Task.default_enabled))
    assert enabled > 0


def test_an_email_registers_once_whatever_its_case():
    users.register("Linus@Example.net", PASSWORD, "Linus", None)

    with pytest.raises(Conflict):
        users.register("  linus@example.NET ", "another password", "Impostor", None)


def test_a_registered_user_logs_in_with_a_token_of_their_own():
    registered = users.register("barbara@example.net", PASSWORD, "Barbara", "fr")

    logged_in = users.login("BARBARA@example.net", PASSWORD)

    assert logged_in["user_id"] == registered["user_id"]
    assert authenticated_user_id(logged_in["token"]) == registered["user_id"]


def test_a_wrong_password_and_an_unknown_email_get_the_same_answer():
    users.register("edsger@example.net", PASSWORD, "Edsger", None)

    with pytest.raises(BadRequest) as wrong_password:
        users.login("edsger@example.net", "not the password")
    with pytest.raises(BadRequest) as unknown_email:
        users.login("nobody@example.net", PASSWORD)

    assert wrong_password.value.message == unknown_email.value.message


def test_only_sessions_with_a_message_are_listed_most_recent_first(user_id, make_session):
    silent, older, newer = (make_session(user_id) for _ in range(3))
    receive_user_message(user_id, older, "m-1", "First")
    receive_user_message(user_id, newer, "m-1", "Second")

    listed = sessions.list_sessions(user_id, 10, 0)["sessions"]

    assert [s["session_id"] for s in listed] == [newer, older]
    assert [s["title"] for s in listed] == ["Second", "First"]
    assert silent not in {s["session_id"] for s in listed}


def test_a_user_lists_only_their_own_sessions(user_id, other_user_id, make_session):
    theirs = make_session(other_user_id)
    receive_user_message(other_user_id, theirs, "m-1", "Not Ada's")

    assert sessions.list_sessions(user_id, 10, 0) == {"sessions": []}


def test_a_deleted_session_is_no_longer_listed(user_id, session_id):
    receive_user_message(user_id, session_id, "m-1", "Soon gone")

    sessions.delete_session(user_id, session_id)

    assert sessions.list_sessions(user_id, 10, 0) == {"sessions": []}


def test_a_session_is_deleted_by_its_owner_only(user_id, other_user_id, session_id):
    with pytest.raises(Forbidden):
        sessions.delete_session(other_user_id, session_id)

    assert sessions.user_owns_session(user_id, session_id)


def test_a_deleted_session_cannot_be_deleted_again(user_id, session_id):
    sessions.delete_session(user_id, session_id)

    with pytest.raises(NotFound):
        sessions.delete_session(user_id, session_id)
    assert not sessions.user_owns_session(user_id, session_id)
