"""The user's local time, from the offset their browser reported (POST /timezone)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

# Real offsets run from UTC-12 to UTC+14; anything beyond is refused at input.
MAX_OFFSET_MINUTES = 14 * 60


def user_timezone(timezone_offset: int | None) -> timezone:
    """The fixed-offset zone of a Mojodex `timezone_offset` (minutes to add to local
    time to get UTC, as JavaScript's Date.getTimezoneOffset(): Paris in summer is -120);
    UTC when the user never sent one."""
    if timezone_offset is None:
        return UTC
    return timezone(-timedelta(minutes=timezone_offset))


def user_now(timezone_offset: int | None, now: datetime | None = None) -> datetime:
    """Now (or `now`) in the user's time zone, an aware datetime."""
    return (now or datetime.now(UTC)).astimezone(user_timezone(timezone_offset))


def prompt_dates(timezone_offset: int | None) -> dict[str, str]:
    """What the prompts say of the date: `today` (YYYY-MM-DD, the user's day) and
    `local_time` (the user's clock and offset)."""
    local = user_now(timezone_offset)
    return {
        "today": local.date().isoformat(),
        "local_time": local.strftime("%A %H:%M") + f" (UTC{local.strftime('%z')[:3]}:"
        f"{local.strftime('%z')[3:]})",
    }
