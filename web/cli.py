"""`flask` CLI commands of System1."""

from __future__ import annotations

import click
from flask import Flask
from sqlalchemy import select

from common.models import User
from web.extensions import db
from web.services import users

DEMO_EMAIL = "demo@system1.local"
DEMO_PASSWORD = "demo-password"


def register_commands(app: Flask) -> None:
    @app.cli.command("seed-demo")
    def seed_demo() -> None:
        """Create the demo user if missing and print its login."""
        if db.session.scalar(select(User).where(User.email == DEMO_EMAIL)) is None:
            users.register(DEMO_EMAIL, DEMO_PASSWORD, "Demo", "en")
        click.echo(f"demo login: {DEMO_EMAIL} / {DEMO_PASSWORD}")
