"""`flask` CLI commands of System1."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from sqlalchemy import select

from common.models import User
from web.extensions import db
from web.services import catalogue, users

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "common" / "migrations"
DEMO_EMAIL = "demo@system1.local"
DEMO_PASSWORD = "demo-password"


def init_migrations(app: Flask) -> None:
    """Set up Flask-Migrate on the app (`app.extensions["migrate"]`, which
    common/migrations/env.py reads, and the real `flask db` group).

    Imported here, on use, not by `create_app`: Flask-Migrate brings Alembic and
    its dependencies into memory, and a web worker never migrates anything
    (docs/performance.md, "Flask-Migrate on use")."""
    if "migrate" in app.extensions:
        return
    # Alembic logs each plugin it sets up at import, now that logging is configured.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    from flask_migrate import Migrate

    Migrate(app, db, directory=str(MIGRATIONS_DIR))


class LazyMigrateGroup(click.Group):
    """`flask db ...`: Flask-Migrate's command group, loaded when it is invoked.

    Click builds a subcommand's context with `make_context`, then runs
    `context.command`: this one hands over to the real group, with its own
    options and subcommands (`flask db upgrade --directory ...`, `flask db --help`).
    """

    def __init__(self, app: Flask) -> None:
        super().__init__("db", help="Perform database migrations (Flask-Migrate).")
        self._app = app

    def _real(self) -> click.Group:
        init_migrations(self._app)
        from flask_migrate.cli import db as real_group

        return real_group

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra):
        return self._real().make_context(info_name, args, parent=parent, **extra)


def register_commands(app: Flask) -> None:
    app.cli.add_command(LazyMigrateGroup(app), name="db")

    @app.cli.command("load-tasks")
    @click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
    def load_tasks(path: Path | None) -> None:
        """Load a task catalogue (JSON or YAML; default: the shipped catalogue)."""
        tasks = catalogue.load_catalogue(path or catalogue.DEFAULT_CATALOGUE)
        click.echo(f"loaded {len(tasks)} task(s): {', '.join(t.name_for_system for t in tasks)}")

    @app.cli.command("setup-db")
    def setup_db() -> None:
        """Apply the schema migrations, then load the shipped task catalogue
        (what a deployment's one-shot migration step runs)."""
        init_migrations(current_app)
        import flask_migrate

        flask_migrate.upgrade()
        tasks = catalogue.load_catalogue()
        click.echo(f"database up to date; {len(tasks)} catalogue task(s) loaded")

    @app.cli.command("seed-demo")
    def seed_demo() -> None:
        """Load the shipped task catalogue, create the demo user if missing and
        print its login."""
        catalogue.load_catalogue()
        if db.session.scalar(select(User).where(User.email == DEMO_EMAIL)) is None:
            users.register(DEMO_EMAIL, DEMO_PASSWORD, "Demo", "en")
        click.echo(f"demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}")
