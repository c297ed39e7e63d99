"""The OpenAPI 3.1 document of the REST API, built from the code.

Nothing here is written by hand per route. The builder walks web/routes.py
`ROUTES` (each Resource's HTTP methods), reads what each handler declares
next to itself, and adds the plain Flask views that declare responses:

- input: `@use_input(Model, location)` (web/validation.py): query parameters,
  or a request body (JSON, and forms where `forms=True`);
- authentication: `method_decorators = [require_user]` (web/auth.py);
- rate limits: `@rate_limited(...)` (web/ratelimit.py): a 429 answer;
- responses: `@responds(Model)` here, one line per status that has a body
  of its own; the standard errors (400, 401, 403, 404, 413, 415, 422, 429,
  503) are added from the above and all share the `Error` schema.

Pydantic's JSON Schema (2020-12) is what OpenAPI 3.1 uses; every model lands
under components/schemas and is referenced with `$ref`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from flask import Flask, current_app
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from web.sockets.events import socketio_description, socketio_extension

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"
REF_TEMPLATE = "#/components/schemas/{model}"
JSON = "application/json"
FORM_CONTENT_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")

# Endpoints that are not part of the API: static files (Swagger UI's, the playground's).
UNDOCUMENTED_ENDPOINTS = frozenset({"static", "docs_asset", "playground_asset"})
IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})


class Error(BaseModel):
    """Every error answer: one sentence naming the problem (and the field)."""

    error: str = Field(description="What went wrong, for a human; names the field if any.")


class OutputModel(BaseModel):
    """Base of response models: documents the fields a client can rely on;
    more fields may come (clients must ignore unknown fields)."""

    model_config = ConfigDict(extra="allow")


# A response body: a pydantic model (JSON), `str` (text), `dict` (any JSON
# object) or None (no body).
Model = type[BaseModel] | type[str] | type[dict] | None


@dataclass(frozen=True)
class DeclaredResponse:
    model: Model
    content_types: tuple[str, ...]
    description: str | None


def responds(
    model: Model | dict[int, Model] = None,
    status: int = 200,
    *,
    content_type: str | tuple[str, ...] | None = None,
    description: str | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare an answer of a handler (a Resource method or a Flask view).

    `@responds(SessionList)` is a 200 with that JSON body; `@responds(Health, 503)`
    another status; `@responds({200: UserToken, 409: Error})` several at once;
    `@responds(str, content_type="text/plain")` a text body; `@responds(None, 204)`
    no body. Stackable, in any order with the other decorators.
    """
    declared = model if isinstance(model, dict) else {status: model}
    if isinstance(content_type, str):
        declared_types: tuple[str, ...] = (content_type,)
    else:
        declared_types = tuple(content_type or ())

    def decorator(handler: Callable[..., Any]) -> Callable[..., Any]:
        responses = dict(getattr(handler, "responses", {}))
        for code, body in declared.items():
            kinds = declared_types
            if not kinds and body is not None:
                kinds = ("text/plain",) if body is str else (JSON,)
            responses[code] = DeclaredResponse(body, kinds, description)
        handler.responses = responses  # type: ignore[attr-defined]
        return handler

    return decorator


# The standard errors, each answered with the Error schema.
ERROR_RESPONSES: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "Malformed request or missing field (the error names it)."),
    401: ("Unauthorized", "No token, an invalid one, or an expired one."),
    403: ("Forbidden", "The resource belongs to another user."),
    404: ("NotFound", "Unknown id."),
    409: ("Conflict", "Conflict with the stored state."),
    413: ("PayloadTooLarge", "The body is over the size limit."),
    415: ("UnsupportedMediaType", "The body is not JSON (or a form where forms are accepted)."),
    422: ("Unprocessable", "A field has an invalid value (the error names it)."),
    429: ("TooManyRequests", "Rate limited: retry after Retry-After seconds."),
    503: ("ServiceUnavailable", "A dependency (database, broker) is down; retry shortly."),
}

# The 429 of the routes that start a turn, besides any rate limit of theirs.
DAILY_LIMIT_REACHED = (
    "Rate limited, or the daily token limit (USER_DAILY_TOKEN_LIMIT) is reached: the body "
    "adds `limit` and `resets_at` (midnight UTC); retry after Retry-After seconds."
)

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "token": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": (
            "The JWT from PUT /user (register) or POST /user (login), as is "
            '(as Mojodex clients send it) or as "Bearer <token>". Tokens expire '
            "(JWT_EXPIRY_S); an expired one gets a 401."
        ),
    },
    "backoffice": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": (
            "The backoffice secret (BACKOFFICE_SECRET), for the task catalogue and for "
            "anyone's usage."
        ),
    },
    "webapp": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": (
            "The Mojodex web app's server secret (MOJODEX_WEBAPP_SECRET), for the calls it "
            "makes before anyone logs in."
        ),
    },
}

# Marks that web/auth.py's decorators leave on their wrappers -> security scheme.
SECURITY_ATTRIBUTES = {
    "requires_user": "token",
    "requires_backoffice": "backoffice",
    "requires_webapp_secret": "webapp",
}

DESCRIPTION = """\
The REST half of System1's client protocol (the Mojodex backend's protocol).

- **Authentication**: every route but register/login (`PUT`/`POST /user`), `/health`,
  `/metrics`, `GET /language` and the pages (`/`, `/docs`, this document) needs
  `Authorization: <token>` (or `Bearer <token>`); `/task` needs the backoffice secret,
  `/is_email_service_configured` the Mojodex web app's secret.
  Tokens expire (401, "Token expired").
- **Input**: JSON bodies for PUT/POST/DELETE, query strings for GET; DELETE also
  takes its fields from the query string. `PUT /user_message` and
  `POST /user_task_execution_run` also accept forms. Unknown fields (Mojodex's
  `datetime`, `platform`, `version`) are accepted and ignored.
- **Rate limits**: logins per address and per email, registrations per address,
  user messages per user and per address (429 with `Retry-After`).
- **Errors**: always `{"error": "<sentence>"}` with the status: 400 missing or
  malformed field, 401 token, 403 not yours, 404 unknown id, 409 conflict, 413 body
  too large, 415 wrong content type, 422 invalid value, 429 rate limited (with
  `Retry-After`), 503 a dependency is down.
- **Dates** are ISO 8601 with a UTC offset.
"""


def _operation_id(method: str, path: str) -> str:
    return f"{method.lower()}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_') or 'root'}"


def openapi_path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    """A Flask rule as an OpenAPI path, with its path parameters."""
    parameters = []

    def replace(match: re.Match[str]) -> str:
        converter, name = match.group(1), match.group(2)
        schema = {"type": "integer"} if converter == "int" else {"type": "string"}
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>", replace, rule), parameters


def _security(resource: type, method: str) -> list[str]:
    """The security schemes the Resource's `method_decorators` accept (any one of them)."""
    decorators = getattr(resource, "method_decorators", []) or []
    if isinstance(decorators, dict):
        decorators = decorators.get(method.lower(), [])
    for decorator in decorators:
        wrapped = decorator(lambda: None)
        schemes = [
            scheme
            for attribute, scheme in SECURITY_ATTRIBUTES.items()
            if getattr(wrapped, attribute, False)
        ]
        if schemes:
            return schemes
    return []


def _summary(handler: Callable[..., Any], method: str, path: str) -> tuple[str, str | None]:
    doc = (handler.__doc__ or "").strip()
    if not doc:
        return f"{method} {path}", None
    first, _, rest = doc.partition("\n")
    return first.strip(), rest.strip() or None


@dataclass
class _Operation:
    method: str
    path: str
    handler: Callable[..., Any]
    path_parameters: list[dict[str, Any]]
    is_resource: bool
    security: list[str]


class _Builder:
    def __init__(self) -> None:
        self.models: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = []
        self.schemas: dict[str, Any] = {}

    def ref(self, model: type[BaseModel], mode: Literal["validation", "serialization"]) -> Any:
        """A placeholder resolved once every model is known (see `resolve`)."""
        if (model, mode) not in self.models:
            self.models.append((model, mode))
        return ("$model", model, mode)

    def resolve(self, document: Any) -> Any:
        refs, definitions = models_json_schema(self.models, ref_template=REF_TEMPLATE)
        self.schemas.update(definitions.get("$defs", {}))

        def walk(node: Any) -> Any:
            if isinstance(node, tuple) and node and node[0] == "$model":
                return refs[(node[1], node[2])]
            if isinstance(node, dict):
                return {key: walk(value) for key, value in node.items()}
            if isinstance(node, list):
                return [walk(value) for value in node]
            return node

        return walk(document)

    def query_parameters(self, model: type[BaseModel], all_optional: bool) -> list[dict[str, Any]]:
        schema = model.model_json_schema(mode="validation", ref_template=REF_TEMPLATE)
        self.schemas.update(schema.pop("$defs", {}))
        required = set(schema.get("required", []))
        parameters = []
        for name, field in schema.get("properties", {}).items():
            field = dict(field)
            field.pop("title", None)
            description = field.pop("description", None)
            # A query string cannot carry null: an absent parameter is the null.
            if "anyOf" in field:
                options = [o for o in field["anyOf"] if o != {"type": "null"}]
                if len(options) == 1:
                    field.pop("anyOf")
                    field.update(options[0])
                else:
                    field["anyOf"] = options
            if field.get("default", ...) is None:
                field.pop("default")
            parameter: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required and not all_optional,
                "schema": field,
            }
            if all_optional:
                description = f"{description} " if description else ""
                description += "In the query string or the JSON body (the body wins)."
            if description:
                parameter["description"] = description
            parameters.append(parameter)
        return parameters

    def request_body(self, model: type[BaseModel], forms: bool, required: bool) -> dict[str, Any]:
        schema = self.ref(model, "validation")
        content: dict[str, Any] = {JSON: {"schema": schema}}
        if forms:
            for kind in FORM_CONTENT_TYPES:
                content[kind] = {"schema": schema}
        return {"required": required, "content": content}

    def response(self, declared: DeclaredResponse, status: int) -> dict[str, Any]:
        description = declared.description or (
            ERROR_RESPONSES[status][1] if status in ERROR_RESPONSES else "Success."
        )
        answer: dict[str, Any] = {"description": description}
        if declared.model is None:
            return answer
        if declared.model is str:
            schema: Any = {"type": "string"}
        elif declared.model is dict:
            schema = {"type": "object"}
        else:
            schema = self.ref(declared.model, "serialization")
        answer["content"] = {kind: {"schema": schema} for kind in declared.content_types}
        return answer

    def operation(self, op: _Operation) -> dict[str, Any]:
        handler = op.handler
        summary, description = _summary(handler, op.method, op.path)
        operation: dict[str, Any] = {
            "operationId": _operation_id(op.method, op.path),
            "summary": summary,
            "tags": [op.path.strip("/").split("/")[0].split(".")[0] or "root"],
        }
        if description:
            operation["description"] = description
        parameters = list(op.path_parameters)
        standard: set[int] = set()
        model = getattr(handler, "input_model", None)
        location = getattr(handler, "input_location", None)
        if model is not None:
            standard |= {400, 422}
            if location in ("query", "query_or_body"):
                parameters += self.query_parameters(model, all_optional=location != "query")
            if location in ("body", "query_or_body"):
                standard |= {413, 415}
                required = location == "body" and bool(
                    model.model_json_schema(mode="validation").get("required")
                )
                operation["requestBody"] = self.request_body(
                    model, getattr(handler, "input_forms", False), required
                )
        if parameters:
            operation["parameters"] = parameters
        if op.is_resource:
            standard.add(503)
        if op.security:
            standard |= {401, 403, 404}
            operation["security"] = [{scheme: []} for scheme in op.security]
        if getattr(handler, "rate_limited", False):
            standard.add(429)
        declared: dict[int, DeclaredResponse] = getattr(handler, "responses", {})
        responses: dict[str, Any] = {}
        for status in sorted(set(declared) | standard):
            if status in declared and declared[status].model is not Error:
                responses[str(status)] = self.response(declared[status], status)
            else:
                name = ERROR_RESPONSES[status][0] if status in ERROR_RESPONSES else None
                responses[str(status)] = (
                    {"$ref": f"#/components/responses/{name}"}
                    if name
                    else self.response(declared[status], status)
                )
        if not any(200 <= status < 300 for status in declared):
            # Forces a response declaration: the document tests fail on this mark.
            operation["x-undeclared-response"] = True
            responses.setdefault("200", {"description": "Undeclared."})
        operation["responses"] = responses
        return operation


def _operations(app: Flask) -> list[_Operation]:
    from web.routes import ROUTES

    operations: list[_Operation] = []
    resource_paths = {path: resource for resource, path in ROUTES}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNDOCUMENTED_ENDPOINTS:
            continue
        view = app.view_functions[rule.endpoint]
        resource = getattr(view, "view_class", None)
        path, path_parameters = openapi_path(rule.rule)
        methods = sorted((rule.methods or set()) - IGNORED_METHODS)
        if resource is not None:
            if resource_paths.get(rule.rule) is not resource:
                continue  # a Resource registered outside ROUTES: undocumented
            for method in methods:
                handler = getattr(resource, method.lower())
                security = _security(resource, method)
                operations.append(
                    _Operation(method, path, handler, path_parameters, True, security)
                )
        elif getattr(view, "responses", None):
            for method in methods:
                operations.append(_Operation(method, path, view, path_parameters, False, []))
    return operations


def build_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of the app's documented routes."""
    builder = _Builder()
    paths: dict[str, dict[str, Any]] = {}
    for op in sorted(_operations(app), key=lambda o: (o.path, o.method)):
        paths.setdefault(op.path, {})[op.method.lower()] = builder.operation(op)
    error_ref = builder.ref(Error, "serialization")
    responses: dict[str, Any] = {}
    for status, (name, description) in ERROR_RESPONSES.items():
        responses[name] = {"description": description, "content": {JSON: {"schema": error_ref}}}
        if status == 429:
            responses[name]["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before trying again.",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                }
            }
    socket_events = socketio_extension(builder.ref)
    document = builder.resolve(
        {
            "openapi": OPENAPI_VERSION,
            "info": {
                "title": "System1",
                "version": API_VERSION,
                "description": DESCRIPTION + "\n" + socketio_description(),
            },
            "paths": paths,
            "components": {"responses": responses, "securitySchemes": SECURITY_SCHEMES},
            "x-socketio": socket_events,
        }
    )
    document["components"]["schemas"] = dict(sorted(builder.schemas.items()))
    return document


def cached_document() -> dict[str, Any]:
    """The current app's document, built on first use."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if "openapi_document" not in app.extensions:
        app.extensions["openapi_document"] = build_document(app)
    return app.extensions["openapi_document"]
