"""Celery for both sides: the app (`common.celery.app`), the task names, and two
workarounds of library behaviour, each in a module of its own (`event_dispatcher`,
`broker_transport`)."""
