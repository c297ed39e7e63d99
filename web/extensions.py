"""Flask extensions, created once and bound to the app in `create_app`.

Flask-Migrate (and Alembic under it) is not here: only the `flask db` / `flask
setup-db` commands need it, so web/cli.py sets it up when one of them runs.
"""

from flask_socketio import SocketIO

from common.db import db

socketio = SocketIO()

__all__ = ["db", "socketio"]
