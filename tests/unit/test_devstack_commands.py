"""`make run`'s process lines (common/devstack.py)."""

from common.devstack import process_commands
from common.settings import Settings


def test_workers_and_beat_log_at_the_configured_level():
    # Without --loglevel Celery would log at WARNING and hide the turns' INFO lines.
    commands = process_commands(Settings(log_level="DEBUG"), None, 5555)
    for name in ("turns", "delivery", "beat"):
        assert "--loglevel DEBUG" in commands[name], commands[name]
