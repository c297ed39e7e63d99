"""Flask extensions, created once and bound to the app in `create_app`."""

from flask_migrate import Migrate
from flask_socketio import SocketIO

from common.db import db

socketio = SocketIO()
migrate = Migrate()

__all__ = ["db", "migrate", "socketio"]
