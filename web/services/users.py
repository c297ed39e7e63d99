"""Registering and logging in users."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from werkzeug.security import check_password_hash, generate_password_hash

from common.errors import BadRequest, Conflict, NotFound
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


# --- What the Mojodex web app asks of a user beyond logging in ----------------------

# The languages the Mojodex web app ships translations for (its public/locales/).
LANGUAGES = {"en": "English", "fr": "Français", "es": "Español"}


def _user(user_id: str) -> User:
    user = db.session.get(User, user_id)
    if user is None:  # the token was checked moments ago: the account was just removed
        raise NotFound("Unknown user: log in again.")
    return user


def onboarding_state(user_id: str) -> dict[str, Any]:
    """System1 has no onboarding content, so there is nothing to present: every user
    counts as onboarded (the web app would otherwise hold them on its /onboarding page)."""
    _user(user_id)
    return {"onboarding_presented": True}


def accept_terms(user_id: str) -> dict[str, Any]:
    """Store when the user accepted the terms and conditions (the first time only)."""
    user = _user(user_id)
    if user.terms_and_conditions_agreed is None:
        user.terms_and_conditions_agreed = datetime.now(UTC)
        db.session.commit()
    return {"success": True}


def set_language(user_id: str, language_code: str) -> dict[str, Any]:
    """The language the assistant answers the user in."""
    _user(user_id).language_code = language_code
    db.session.commit()
    return {"success": "Language updated"}


def available_languages() -> dict[str, Any]:
    """The languages a user may pick. No translation file (Mojodex's
    `language_json_file`): the web app keeps the ones it ships."""
    return {"available_languages": LANGUAGES}


def set_timezone(user_id: str, timezone_offset: int) -> dict[str, Any]:
    """The user's offset from UTC, for the dates in prompts and todos."""
    _user(user_id).timezone_offset = timezone_offset
    db.session.commit()
    return {"success": "Timezone updated"}
