"""`make run`'s process lines (devtools/devstack.py)."""

from common.settings import Settings
from devtools.devstack import process_commands


def test_workers_and_beat_log_at_the_configured_level():
    # Without --loglevel Celery would log at WARNING and hide the turns' INFO lines.
    commands = process_commands(Settings(log_level="DEBUG"), None, 5555)
    for name in ("turns", "delivery", "todos", "beat"):
        assert "--loglevel DEBUG" in commands[name], commands[name]
