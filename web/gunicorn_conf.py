"""gunicorn settings for a web node: one gevent worker (Flask-SocketIO needs
sticky sessions, so a node scales out, not up), bound to HOST:PORT.

Stopping (SIGTERM, as `docker stop` sends): the node stops accepting connections,
closes its Socket.IO connections cleanly (clients reconnect, through the proxy, to
another node), finishes the HTTP requests in flight for up to `graceful_timeout`,
and exits.

This file is loaded by gunicorn's master before it forks the worker that gevent
patches: it must not import the app (`web`), Celery or anything that opens sockets.
"""

import os
import sys
from pathlib import Path

import gevent
from gunicorn.workers.ggevent import GeventWorker

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from common.logging_setup import gunicorn_logconfig  # noqa: E402  (needs the project root)

# After SIGTERM the worker's main loop notices within a second that it must stop,
# and closes its listening sockets: Socket.IO connections are closed just after
# that, so that clients do not reconnect to this node.
SOCKETS_CLOSE_DELAY_S = 1.1


def _close_socketio_connections() -> None:
    from web.extensions import socketio  # the app is loaded in the worker by now

    server = getattr(socketio, "server", None)
    if server is not None:
        server.eio.disconnect()  # an Engine.IO close of every client: they reconnect


class SocketClosingGeventWorker(GeventWorker):
    """gunicorn's gevent worker that also closes its Socket.IO connections on SIGTERM,
    instead of holding them until `graceful_timeout` and dropping them."""

    def handle_exit(self, sig, frame):
        if self.alive:
            gevent.spawn_later(SOCKETS_CLOSE_DELAY_S, _close_socketio_connections)
        super().handle_exit(sig, frame)


bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '5000')}"
worker_class = SocketClosingGeventWorker
workers = 1
worker_connections = 4000
# Long-lived websocket connections: no request timeout kill of the worker.
timeout = 0
graceful_timeout = 10
# Idle HTTP keep-alive, in seconds. A chat client pauses longer than gunicorn's few
# seconds between two messages, and each PUT then paid for a new connection
# (docs/performance.md, "HTTP keep-alive"). Longer than the usual proxy idle timeout
# (nginx and most load balancers: 60 s), so that the proxy, not this node, closes an
# idle connection: no request is sent on a connection being closed.
keepalive = 75
accesslog = None
# Several nodes may run on one machine; gunicorn's shared control socket would collide.
control_socket_disable = True
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# gunicorn's own lines in the app's format (LOG_FORMAT), on stderr.
logconfig_dict = gunicorn_logconfig(os.environ.get("LOG_FORMAT", "text").lower())


def post_worker_init(worker):
    # The app is loaded: what exists now lives as long as the process.
    from common.gc_tuning import freeze_startup_objects

    freeze_startup_objects()


def post_fork(server, worker):
    # psycopg2 blocks the whole gevent loop unless told to yield on I/O.
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()
