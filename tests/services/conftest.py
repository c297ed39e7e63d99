"""The service layer's fixtures: the services and statements run in this process (no
gunicorn, no Celery worker) against the real PostgreSQL and Redis of the session.

The layer has a database of its own (`system1_services_<xdist worker>`, on the server
behind `database_url`) and a Redis database of its own on the server behind `redis_url`:
a stack started by the integration tests in the same process runs a Celery worker that
consumes the turn queue, and must never take the turns queued here (their message_pks
name rows of another database).

Each test starts with no session, message, execution or produced text, and an empty
Redis database. The catalogue is kept, and so are two users registered once per run
(registering costs a deliberately slow password hash): Ada and Mallory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from flask import Flask
from sqlalchemy import text
from sqlalchemy.engine import Connection

from common import db as common_db
from common import redis_clients
from common.models import USER_SENDER
from common.queries import messages as message_queries
from common.settings import get_settings
from tests.support.stack import base_env, fresh_database, migrate

XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
# Migrations and the catalogue loader never call the LLM; nothing listens here.
NO_LLM_URL = "http://127.0.0.1:9/v1"
# Emptied before each test; the catalogue (md_task, loaded by `migrate`) and the users
# (md_user, md_user_task) are kept.
EMPTIED_TABLES = (
    "md_produced_text_version",
    "md_produced_text",
    "md_user_task_execution",
    "md_message",
    "md_session",
)
PASSWORD = "a long enough password"


def _services_redis_url(redis_url: str) -> str:
    """The same Redis server as `redis_url`, on a database counted down from the last one
    (15, 14... per xdist worker); the stacks count up from `redis_url`'s."""
    parts = urlsplit(redis_url)
    database = 15 - int(XDIST_WORKER.removeprefix("gw") or 0)
    stacks_database = int(parts.path.lstrip("/") or 0)
    assert database != stacks_database, "the service layer needs a Redis database of its own"
    return urlunsplit(parts._replace(path=f"/{database}"))


def _clear_process_caches() -> None:
    """Forget settings, engines and Redis clients built from an earlier environment."""
    for engine in _cached_engines():
        engine.dispose()
    get_settings.cache_clear()
    common_db.get_engine.cache_clear()
    for client in (redis_clients.app_redis, redis_clients.health_redis, redis_clients.broker_redis):
        client.cache_clear()


def _cached_engines() -> list[Any]:
    """The engines get_engine built in this process (its cache holds at most four)."""
    if common_db.get_engine.cache_info().currsize == 0:
        return []
    return [
        common_db.get_engine(durable, autocommit)
        for durable in (True, False)
        for autocommit in (True, False)
    ]


@pytest.fixture(scope="session")
def services_env(database_url: str, redis_url: str) -> Iterator[dict[str, str]]:
    """This process's environment pointed at the layer's own migrated database and Redis
    database; restored, and every cache built from it dropped, at the end."""
    database = fresh_database(database_url, f"system1_services_{XDIST_WORKER or 'main'}")
    env = base_env(database, _services_redis_url(redis_url), NO_LLM_URL)
    migrate(env)
    with pytest.MonkeyPatch.context() as patch:
        for name in ("DATABASE_URL", "REDIS_URL", "APP_ENV"):
            patch.setenv(name, env[name])
        # Settings of the developer's shell that would send the turns elsewhere.
        for name in ("CELERY_BROKER_URL", "TURN_QUEUE"):
            patch.delenv(name, raising=False)
        _clear_process_caches()
        yield env
        _clear_process_caches()


@pytest.fixture(scope="session")
def app(services_env: dict[str, str]) -> Flask:
    """The web node's app, built by its factory in this process."""
    from common.celery.app import celery_app
    from web import create_app

    app = create_app()
    # celeryconfig reads the settings when first imported, which may have happened
    # before this fixture pointed them here (tests/unit/test_compose.py imports it at
    # collection): the app's own setting wins over its configuration module.
    celery_app.conf.broker_url = get_settings().broker_url
    return app


@pytest.fixture(scope="session")
def broker(services_env: dict[str, str]) -> Iterator[redis.Redis]:
    """The Redis the turns are queued on (the broker is REDIS_URL)."""
    client = redis.Redis.from_url(services_env["REDIS_URL"])
    yield client
    client.close()


@pytest.fixture(autouse=True)
def clean_state(app: Flask, broker: redis.Redis) -> Iterator[None]:
    """Empty tables and Redis database before each test, and an app context (the
    services' `db.session`) during it, removed after."""
    with common_db.get_engine(autocommit=True).connect() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(EMPTIED_TABLES)} CASCADE"))
    broker.flushdb()
    with app.app_context():
        yield


@pytest.fixture
def queued_turns(broker: redis.Redis) -> Callable[[], int]:
    """How many turns wait on the broker's turn queue (a Redis list named for it)."""
    return lambda: broker.llen(get_settings().turn_queue)


@pytest.fixture
def connection() -> Iterator[Connection]:
    """An autocommit connection, as the hot paths use for their prebuilt statements."""
    with common_db.autocommit_connection() as connection:
        yield connection


_emails = count()


@pytest.fixture
def make_user() -> Callable[..., dict[str, Any]]:
    """Register a user through the users service; its payload (user_id, token...)."""
    from web.services import users

    def _make(name: str = "Ada", language_code: str | None = "en") -> dict[str, Any]:
        email = f"{name.lower()}.{next(_emails)}@example.org"
        return users.register(email, PASSWORD, name, language_code)

    return _make


@pytest.fixture(scope="session")
def registered(app: Flask) -> dict[str, str]:
    """Ada and Mallory, registered once per run: their user_ids by name."""
    from web.services import users

    with app.app_context():
        return {
            name: users.register(f"{name.lower()}@example.com", PASSWORD, name, "en")["user_id"]
            for name in ("Ada", "Mallory")
        }


@pytest.fixture
def user_id(registered: dict[str, str]) -> str:
    return registered["Ada"]


@pytest.fixture
def other_user_id(registered: dict[str, str]) -> str:
    return registered["Mallory"]


@pytest.fixture
def make_session() -> Callable[[str], str]:
    """Create a chat session of a user through the sessions service; its id."""
    from web.services import sessions

    return lambda owner_id: sessions.create_session(owner_id, "webapp")["session_id"]


@pytest.fixture
def session_id(user_id: str, make_session: Callable[[str], str]) -> str:
    return make_session(user_id)


@pytest.fixture
def make_execution() -> Callable[..., dict[str, Any]]:
    """Create an execution of one of the user's tasks (enabled at registration from the
    catalogue) through the user_tasks service; its payload (pk, session_id, inputs)."""
    from web.services import user_tasks

    def _make(owner_id: str, task_name: str = "Summarize a text") -> dict[str, Any]:
        listed = user_tasks.list_user_tasks(owner_id, 100, 0)["user_tasks"]
        user_task_pk = next(t["user_task_pk"] for t in listed if t["task_name"] == task_name)
        return user_tasks.create_execution(owner_id, user_task_pk)

    return _make


@pytest.fixture
def store(connection: Connection) -> Callable[..., Any]:
    """Run the store statement with sensible defaults: the session's row, as
    store_user_side_message answers it."""

    def _store(
        session_id: str,
        owner_id: str,
        client_message_id: str,
        text: str = "hello",
        *,
        sender: str = USER_SENDER,
        expected_mode: str = "chat",
        now: datetime | None = None,
        lease_s: float = 20.0,
    ) -> Any:
        now = now or datetime.now(UTC)
        return message_queries.store_user_side_message(
            connection,
            session_id=session_id,
            owner_id=owner_id,
            expected_mode=expected_mode,
            sender=sender,
            client_message_id=client_message_id,
            payload={"text": text, "message_id": client_message_id},
            now=now,
            lease_until=now + timedelta(seconds=lease_s),
            new_title=text[:60] or None,
        )

    return _store
