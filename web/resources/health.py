"""GET /health: 200 when database, Redis and a worker answer, else 503."""

from __future__ import annotations

from typing import Literal

from flask_restful import Resource
from pydantic import Field

from web.openapi import OutputModel, responds
from web.services.health import check_health


class DependencyState(OutputModel):
    ok: bool
    error: str | None = None


class Health(OutputModel):
    status: Literal["ok", "unavailable"]
    down: list[str] = Field(description="The dependencies that are down.")
    checks: dict[str, DependencyState]


class HealthResource(Resource):
    @responds({200: Health, 503: Health})
    def get(self):
        """The state of each dependency: database, Redis, a Celery worker (503 if one is down)."""
        return check_health()
