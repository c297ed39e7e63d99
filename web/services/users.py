"""Registering and logging in users."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from werkzeug.security import check_password_hash, generate_password_hash

from common.errors import BadRequest, Conflict
from common.models import User, new_public_id
from web.auth import issue_token
from web.extensions import db
from web.offload import off_loop
from web.services.catalogue import enable_default_tasks

# scrypt: a deliberately slow, memory-hard hash.
PASSWORD_METHOD = "scrypt"
# Computed once so a login for an unknown email costs as much as a real one.
_DUMMY_HASH = generate_password_hash("not-a-real-password", method=PASSWORD_METHOD)


def _user_payload(user: User) -> dict[str, Any]:
    return {
        "token": issue_token(user.user_id),
        "user_id": user.user_id,
        "name": user.name,
        "language_code": user.language_code,
        "terms_and_conditions_agreed": user.terms_and_conditions_agreed is not None,
        "company_fk": user.company_fk,
    }


def register(email: str, password: str, name: str, language_code: str | None) -> dict[str, Any]:
    """Create a user; Conflict if the email is taken (enforced by a unique index)."""
    user_id = new_public_id()
    stored = db.session.scalar(
        insert(User)
        .values(
            user_id=user_id,
            email=email.strip().lower(),
            name=name,
            password_hash=off_loop(generate_password_hash, password, PASSWORD_METHOD),
            language_code=language_code,
        )
        .on_conflict_do_nothing(index_elements=[User.email])
        .returning(User.user_id)
    )
    if stored is None:
        db.session.rollback()
        raise Conflict("An account with this email already exists.")
    enable_default_tasks(user_id)
    db.session.commit()
    return _user_payload(db.session.get(User, user_id))


def login(email: str, password: str) -> dict[str, Any]:
    """A token for valid credentials; one message for a wrong email or password."""
    user = db.session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    password_hash = user.password_hash if user else _DUMMY_HASH
    if not off_loop(check_password_hash, password_hash, password) or user is None:
        raise BadRequest("Wrong email or password.")
    return _user_payload(user)
