"""GET /metrics: Prometheus metrics of this node and of the whole deployment."""

from __future__ import annotations

from flask_restful import Resource

from web.metrics import metrics_response
from web.openapi import responds

PROMETHEUS_TYPES = ("text/plain", "application/openmetrics-text")


class MetricsResource(Resource):
    @responds(str, content_type=PROMETHEUS_TYPES, description="Prometheus exposition.")
    def get(self):
        """Prometheus metrics of this node and of the whole deployment."""
        return metrics_response()
