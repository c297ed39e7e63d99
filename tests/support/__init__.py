"""Helpers for the test suite: real processes and real clients."""
