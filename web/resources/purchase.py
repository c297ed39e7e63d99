"""GET /purchase: the user's plan. System1 has no billing: one free plan, no limits."""

from __future__ import annotations

from typing import Any

from flask_restful import Resource
from pydantic import Field

from web.auth import current_user_id, require_user
from web.openapi import OutputModel, responds
from web.services import plans
from web.validation import InputModel, use_input


class PurchaseInput(InputModel):
    pass


class Plan(OutputModel):
    product_name: str
    is_free_product: bool
    remaining_days: int | None = Field(description="None: no end date.")
    n_validity_days: int | None
    n_days_validity: int | None
    n_tasks_limit: int | None = Field(description="None: no limit.")
    n_tasks_consumed: int | None
    tasks: list[str]


class PurchaseStatus(OutputModel):
    purchase_status: str = Field(description='"active": the user may run every task.')
    current_purchases: list[Plan]
    purchasable_products: list[dict[str, Any]] = Field(description="Always empty.")
    last_expired_purchase: list[Plan]


class PurchaseResource(Resource):
    method_decorators = [require_user]

    @responds(PurchaseStatus)
    @use_input(PurchaseInput, location="query")
    def get(self, data: PurchaseInput):
        """The user's plan: always one active free plan with no limit, nothing to buy."""
        return plans.current_plan(current_user_id())
