"""Produced texts: reading them, and the user's edits as new versions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from common.errors import BadRequest, Forbidden, NotFound
from common.models import ProducedText, ProducedTextVersion, Task, UserTask
from common.queries.produced_texts import add_version, latest_version
from web.extensions import db
from web.services.sessions import get_owned_session
from web.services.user_tasks import owned_execution


def _payload(produced_text: ProducedText, version: ProducedTextVersion | None) -> dict[str, Any]:
    return {
        "produced_text_pk": produced_text.produced_text_pk,
        "user_task_execution_fk": produced_text.user_task_execution_fk,
        "user_id": produced_text.user_id,
        "session_id": produced_text.session_id,
        "production": version.production if version else "",
        "title": version.title if version else "",
        "text_type": version.text_type if version else None,
        "produced_text_version_pk": version.produced_text_version_pk if version else None,
        "produced_text_version_index": version.version_index if version else None,
        "creation_date": produced_text.creation_date.isoformat(),
    }


def owned_produced_text(user_id: str, produced_text_pk: int) -> ProducedText:
    produced_text = db.session.get(ProducedText, produced_text_pk)
    if produced_text is None or produced_text.deleted_at is not None:
        raise NotFound(f"Unknown produced_text_pk {produced_text_pk}.")
    if produced_text.user_id != user_id:
        raise Forbidden("This produced text belongs to another user.")
    return produced_text


def get_produced_text(user_id: str, produced_text_pk: int) -> dict[str, Any]:
    produced_text = owned_produced_text(user_id, produced_text_pk)
    return _payload(produced_text, latest_version(db.session, produced_text_pk))


def list_produced_texts(user_id: str, n_produced_texts: int, offset: int) -> dict[str, Any]:
    texts = db.session.scalars(
        select(ProducedText)
        .where(ProducedText.user_id == user_id, ProducedText.deleted_at.is_(None))
        .order_by(ProducedText.produced_text_pk.desc())
        .offset(offset)
        .limit(n_produced_texts)
    ).all()
    return {
        "produced_texts": [
            _payload(text, latest_version(db.session, text.produced_text_pk)) for text in texts
        ]
    }


def save_user_version(
    user_id: str,
    production: str,
    title: str | None,
    produced_text_pk: int | None,
    user_task_execution_pk: int | None,
    session_id: str | None,
) -> dict[str, Any]:
    """The user's edit, stored as a new version of the produced text it names
    (directly, through its task execution, or through its session), or as a
    new produced text."""
    produced_text: ProducedText | None = None
    text_type = "document"
    if produced_text_pk is not None:
        produced_text = owned_produced_text(user_id, produced_text_pk)
    elif user_task_execution_pk is not None:
        execution = owned_execution(user_id, user_task_execution_pk)
        produced_text = db.session.scalar(
            select(ProducedText).where(
                ProducedText.user_task_execution_fk == user_task_execution_pk
            )
        )
        text_type = db.session.scalar(
            select(Task.output_text_type)
            .join(UserTask, UserTask.task_fk == Task.task_pk)
            .where(UserTask.user_task_pk == execution.user_task_fk)
        )
        if produced_text is None:
            produced_text = ProducedText(
                user_id=user_id,
                user_task_execution_fk=user_task_execution_pk,
                session_id=execution.session_id,
            )
    elif session_id is not None:
        get_owned_session(user_id, session_id)
        produced_text = db.session.scalar(
            select(ProducedText).where(
                ProducedText.session_id == session_id, ProducedText.deleted_at.is_(None)
            )
        ) or ProducedText(user_id=user_id, session_id=session_id)
    else:
        produced_text = ProducedText(user_id=user_id)
    if produced_text.produced_text_pk is None:
        db.session.add(produced_text)
        db.session.flush()
    previous = latest_version(db.session, produced_text.produced_text_pk)
    if title is None and previous is None:
        raise BadRequest("Missing field 'title' for a new produced text.")
    version = add_version(
        db.session,
        produced_text,
        title=title if title is not None else previous.title,
        production=production,
        text_type=previous.text_type if previous else text_type,
        author="user",
    )
    db.session.commit()
    return {
        "produced_text_pk": produced_text.produced_text_pk,
        "produced_text_version_pk": version.produced_text_version_pk,
        "produced_text_version_index": version.version_index,
    }


def delete_produced_text(user_id: str, produced_text_pk: int) -> dict[str, Any]:
    produced_text = owned_produced_text(user_id, produced_text_pk)
    produced_text.deleted_at = datetime.now(UTC)
    db.session.commit()
    return {"produced_text_pk": produced_text_pk}
