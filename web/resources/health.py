"""GET /health: 200 when database, Redis and a worker answer, else 503."""

from __future__ import annotations

from flask_restful import Resource

from web.services.health import check_health


class HealthResource(Resource):
    def get(self):
        return check_health()
