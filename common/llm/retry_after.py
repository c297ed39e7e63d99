"""How long a provider asked us to wait before trying again (429 and 503 answers)."""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

import openai

# The statuses whose `Retry-After` is honoured: rate limited, and overloaded.
RETRY_AFTER_STATUSES = (429, 503)


def requested_wait_s(error: BaseException) -> float | None:
    """The wait a 429 or 503 answer asked for (`retry-after-ms`, or `Retry-After` in
    seconds or as an HTTP date), or None if it asked for none."""
    if not isinstance(error, openai.APIStatusError):
        return None
    if error.status_code not in RETRY_AFTER_STATUSES:
        return None
    headers = error.response.headers
    # OpenAI and Azure also send milliseconds, more precise than whole seconds.
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
