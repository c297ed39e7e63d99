"""Produced texts and their numbered versions, for the web node (user edits)
and the workers (drafts the assistant writes)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session as DbSession

from common.models import ProducedText, ProducedTextVersion


def add_version(
    db: DbSession,
    produced_text: ProducedText,
    title: str,
    production: str,
    text_type: str,
    author: str,
) -> ProducedTextVersion:
    """Append version N+1 to a produced text (the caller commits).

    The produced text's row is locked first, so a user's edit and an
    assistant's draft arriving together get consecutive numbers.
    """
    db.execute(
        select(ProducedText.produced_text_pk)
        .where(ProducedText.produced_text_pk == produced_text.produced_text_pk)
        .with_for_update()
    )
    last = db.scalar(
        select(func.max(ProducedTextVersion.version_index)).where(
            ProducedTextVersion.produced_text_fk == produced_text.produced_text_pk
        )
    )
    version = ProducedTextVersion(
        produced_text_fk=produced_text.produced_text_pk,
        version_index=(last or 0) + 1,
        title=title,
        production=production,
        text_type=text_type,
        author=author,
    )
    db.add(version)
    db.flush()
    return version


def latest_version(db: DbSession, produced_text_pk: int) -> ProducedTextVersion | None:
    return db.scalar(
        select(ProducedTextVersion)
        .where(ProducedTextVersion.produced_text_fk == produced_text_pk)
        .order_by(ProducedTextVersion.version_index.desc())
        .limit(1)
    )
