"""The web node: Flask app factory, REST routes and the Socket.IO server."""

from __future__ import annotations

from flask import Flask
from flask_cors import CORS

from common.db import ENGINE_OPTIONS
from common.delivery.emitter import use_server_emitter
from common.logging_setup import configure_logging
from common.settings import get_settings
from web.apidocs import register_api_docs
from web.cli import register_commands
from web.errors import register_error_handlers
from web.extensions import db, socketio
from web.metrics import init_request_metrics
from web.offload import on_gevent_loop
from web.ratelimit import init_rate_limits
from web.request_context import init_request_context
from web.routes import register_routes
from web.sockets.delivery_listener import emit_delivery_request
from web.sockets.message_queue import OrderedRedisManager

MAX_BODY_BYTES = 1024 * 1024


def create_app() -> Flask:
    """Build a configured app; nothing runs at import time."""
    settings = get_settings()
    configure_logging()
    app = Flask(__name__)
    app.config.update(
        SQLALCHEMY_DATABASE_URI=settings.sqlalchemy_database_url,
        SQLALCHEMY_ENGINE_OPTIONS=ENGINE_OPTIONS,
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        JSON_SORT_KEYS=False,
    )
    db.init_app(app)
    socketio.init_app(
        app,
        # Socket.IO's Redis channel and the delivery channel on one subscription, so
        # that a message never overtakes its tokens (web/sockets/message_queue.py).
        client_manager=OrderedRedisManager(on_delivery=emit_delivery_request),
        cors_allowed_origins=_origin_allowed,
        async_mode=_async_mode(),
    )
    use_server_emitter(socketio)
    import web.sockets.handlers  # noqa: F401  (registers the Socket.IO handlers)

    init_request_context(app)
    init_request_metrics(app)
    init_rate_limits(app)
    _init_cors(app)
    register_routes(app)
    register_api_docs(app)
    register_error_handlers(app)
    register_commands(app)  # `flask db` among them, Flask-Migrate imported on use only
    return app


def _init_cors(app: Flask) -> None:
    """REST CORS: only the origins of CORS_ALLOWED_ORIGINS (none by default:
    browsers then allow same-origin pages only). Never "*"."""
    origins = get_settings().cors_origins
    if origins:
        CORS(
            app,
            origins=origins,
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Retry-After"],
            max_age=600,
        )


def _origin_allowed(origin: str | None, environ: dict) -> bool:
    """Socket.IO CORS: the page's own origin, plus CORS_ALLOWED_ORIGINS.

    Non-browser clients (python-socketio) send their target URL as Origin,
    which is the same origin, so they are always accepted.
    """
    if origin is None:
        return True
    same_origin = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
    return origin == same_origin or origin in get_settings().cors_origins


def _async_mode() -> str:
    """gevent under gunicorn's gevent worker (monkey-patched), threading otherwise."""
    return "gevent" if on_gevent_loop() else "threading"
