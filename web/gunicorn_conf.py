"""gunicorn settings for a web node: one gevent worker (Flask-SocketIO needs
sticky sessions, so a node scales out, not up), bound to HOST:PORT."""

import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '5000')}"
worker_class = "gevent"
workers = 1
worker_connections = 4000
# Long-lived websocket connections: no request timeout kill of the worker.
timeout = 0
graceful_timeout = 10
keepalive = 5
accesslog = None
# Several nodes may run on one machine; gunicorn's shared control socket would collide.
control_socket_disable = True
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()


def post_fork(server, worker):
    # psycopg2 blocks the whole gevent loop unless told to yield on I/O.
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()
