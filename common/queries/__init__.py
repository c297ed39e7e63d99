"""Statements by aggregate (messages, produced texts): the SQL behind the services and
tasks, so that those read as business steps."""
