"""GET /usage: turns and tokens per UTC day, for a user or (backoffice) for anyone."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from flask import g
from flask_restful import Resource
from pydantic import AfterValidator, Field

from common.errors import Forbidden
from web.auth import require_user_or_backoffice
from web.openapi import OutputModel, responds
from web.services import usage
from web.validation import InputModel, use_input

# YYYY-MM-DD only (pydantic's date would also take a Unix timestamp).
Day = Annotated[
    str,
    Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="A UTC day, YYYY-MM-DD."),
    AfterValidator(date.fromisoformat),
]


class UsageInput(InputModel):
    start: Day | None = Field(default=None, alias="from")
    end: Day | None = Field(default=None, alias="to")
    user_id: str | None = Field(
        default=None,
        max_length=64,
        description="Backoffice only: one user's usage (without it, everyone's).",
    )


class UsageTotals(OutputModel):
    turns: int = Field(description="Assistant turns (title requests count tokens, not turns).")
    prompt_tokens: int
    completion_tokens: int


class UsageDay(UsageTotals):
    date: str = Field(description="The UTC day, YYYY-MM-DD.")


class UsageReport(OutputModel):
    days: list[UsageDay] = Field(description="Days with usage, oldest first.")
    total: UsageTotals


class UsageResource(Resource):
    method_decorators = [require_user_or_backoffice]

    @responds(UsageReport)
    @use_input(UsageInput, location="query")
    def get(self, data: UsageInput):
        """Turns and tokens per UTC day: the caller's, or (backoffice) a user's or everyone's.

        From `from` to `to`, both included, at most 366 days; by default the last 30.
        """
        start, end = data.start, data.end
        if g.get("backoffice"):
            if data.user_id is not None:
                usage.check_user_exists(data.user_id)
            return usage.usage_report(data.user_id, start, end)  # type: ignore[arg-type]
        if data.user_id is not None and data.user_id != g.user_id:
            raise Forbidden("Only the backoffice may read another user's usage.")
        return usage.usage_report(g.user_id, start, end)  # type: ignore[arg-type]
