"""The names of System1's Celery tasks: what a sender needs, without importing the task."""

ASSISTANT_TURN_TASK = "system1.assistant_turn"
TITLE_TASK = "system1.generate_execution_title"
RESEND_TASK = "system1.resend_unacknowledged"
RECOVER_TASK = "system1.recover_lost_work"
TODOS_TASK = "system1.extract_todos"
