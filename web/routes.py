"""Every REST route, registered in one place (as Mojodex's HttpRouteManager)."""

from __future__ import annotations

from typing import Any

from flask_restful import Api

from web.playground import register_playground
from web.resources.email_service import EmailServiceResource
from web.resources.health import HealthResource
from web.resources.language import LanguageResource
from web.resources.message import MessageResource
from web.resources.metrics import MetricsResource
from web.resources.onboarding import OnboardingResource
from web.resources.produced_text import ProducedTextResource
from web.resources.purchase import PurchaseResource
from web.resources.session import SessionResource
from web.resources.task import TaskResource
from web.resources.terms_and_conditions import TermsAndConditionsResource
from web.resources.timezone import TimezoneResource
from web.resources.todos import TodosResource
from web.resources.turn_stop import TurnStopResource
from web.resources.usage import UsageResource
from web.resources.user import UserResource
from web.resources.user_message import UserMessageResource
from web.resources.user_task import UserTaskResource
from web.resources.user_task_execution import (
    UserTaskExecutionResource,
    UserTaskExecutionRunResource,
)
from web.resources.user_task_execution_produced_text import (
    UserTaskExecutionProducedTextResource,
)
from web.resources.user_task_execution_title import UserTaskExecutionTitleResource

ROUTES: list[tuple[type, str]] = [
    (UserResource, "/user"),
    (SessionResource, "/session"),
    (UserMessageResource, "/user_message"),
    (MessageResource, "/message"),
    (TurnStopResource, "/assistant_turn_stop"),
    (UsageResource, "/usage"),
    (UserTaskResource, "/user_task"),
    (UserTaskExecutionResource, "/user_task_execution"),
    (UserTaskExecutionRunResource, "/user_task_execution_run"),
    (UserTaskExecutionTitleResource, "/user_task_execution_title"),
    (UserTaskExecutionProducedTextResource, "/user_task_execution_produced_text"),
    (ProducedTextResource, "/produced_text"),
    (TodosResource, "/todos"),
    # What the Mojodex web app asks around its pages (docs/mojodex-webapp.md).
    (OnboardingResource, "/onboarding"),
    (TermsAndConditionsResource, "/terms_and_conditions"),
    (LanguageResource, "/language"),
    (TimezoneResource, "/timezone"),
    (PurchaseResource, "/purchase"),
    (EmailServiceResource, "/is_email_service_configured"),
    (TaskResource, "/task"),
    (HealthResource, "/health"),
    (MetricsResource, "/metrics"),
]


class RouteManager(Api):
    """flask-restful's Api, with errors left to the app's single error mapping
    (web/errors.py) instead of flask-restful's own."""

    def handle_error(self, e: Exception) -> Any:
        raise e


def register_routes(app: Any) -> RouteManager:
    api = RouteManager(app)
    for resource, path in ROUTES:
        api.add_resource(resource, path)
    # Not REST: the playground page at / and its files under /playground/ (web/playground.py).
    register_playground(app)
    return api
