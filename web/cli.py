"""`flask` CLI commands of System1."""

from __future__ import annotations

from pathlib import Path

import click
import flask_migrate
from flask import Flask
from sqlalchemy import select

from common.models import User
from web.extensions import db
from web.services import catalogue, users

DEMO_EMAIL = "demo@system1.local"
DEMO_PASSWORD = "demo-password"


def register_commands(app: Flask) -> None:
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
