"""Request input: read the right part of the request and validate it with pydantic.

Each route declares its input model next to its handler with `@use_input`.
A missing field is a 400 naming the field; a present but invalid value is a
422 naming the field; a body of an unsupported type is a 415.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from flask import request
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from common.errors import BadRequest, Unprocessable, UnsupportedMediaType

M = TypeVar("M", bound=BaseModel)
Location = Literal["query", "body", "query_or_body"]

FORM_TYPES = {"multipart/form-data", "application/x-www-form-urlencoded"}


class InputModel(BaseModel):
    """Base for request inputs: Mojodex clients send extra fields
    (datetime, platform, version) on every call; they are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")

    @field_validator("*")
    @classmethod
    def _no_nul_characters(cls, value: Any) -> Any:
        # PostgreSQL cannot store NUL in text: refuse it here, naming the field.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


def _body_fields(forms: bool = True) -> dict[str, Any]:
    if not request.content_length and not request.data and not request.form:
        return {}
    if request.mimetype == "application/json":
        try:
            body = request.get_json(silent=True)
        except RecursionError:
            body = None  # nested deeper than the parser can go
        if body is None:
            raise BadRequest("The request body is not valid JSON.")
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.")
        return body
    if forms and request.mimetype in FORM_TYPES:
        return request.form.to_dict()
    accepted = "application/json or multipart/form-data" if forms else "application/json"
    raise UnsupportedMediaType(
        f"Send the body as {accepted} (got {request.mimetype or 'no content type'})."
    )


def request_fields(location: Location, forms: bool = True) -> dict[str, Any]:
    """The raw input fields of the current request for a location (forms
    accepted in the body only if `forms`)."""
    if location == "query":
        return request.args.to_dict()
    if location == "body":
        return _body_fields(forms)
    return {**request.args.to_dict(), **_body_fields(forms)}


def _field_name(error: dict[str, Any]) -> str:
    return ".".join(str(part) for part in error["loc"]) or "body"


def _unstorable_text(fields: dict[str, Any]) -> tuple[str, str] | None:
    """The first string, at any depth, that PostgreSQL cannot store (a NUL, or
    a lone surrogate that has no UTF-8 form): its field path and the reason."""
    pending = deque((str(key), value) for key, value in fields.items())
    while pending:
        path, value = pending.popleft()
        if isinstance(value, str):
            if "\x00" in value:
                return path, "must not contain NUL characters"
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return path, "must be valid Unicode text (no lone surrogates)"
        elif isinstance(value, dict):
            pending.extend((f"{path}.{key}", item) for key, item in value.items())
        elif isinstance(value, list):
            pending.extend((f"{path}.{index}", item) for index, item in enumerate(value))
    return None


def validate(model: type[M], fields: dict[str, Any]) -> M:
    """Validate fields against a model, raising a client error naming the field."""
    unstorable = _unstorable_text(fields)
    if unstorable is not None:
        raise Unprocessable(f"Invalid field '{unstorable[0]}': {unstorable[1]}.")
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        missing = [e for e in errors if e["type"] == "missing"]
        if missing:
            names = ", ".join(f"'{_field_name(e)}'" for e in missing)
            raise BadRequest(f"Missing field {names}.") from None
        first = errors[0]
        raise Unprocessable(f"Invalid field '{_field_name(first)}': {first['msg']}.") from None


def use_input(
    model: type[M], location: Location, forms: bool = False
) -> Callable[[Callable[..., Any]], Any]:
    """Decorate a Resource method: it receives the validated input as `data`.

    A body is JSON; `forms=True` also accepts multipart/form-data and
    x-www-form-urlencoded bodies with the same field names (Mojodex clients
    send forms to PUT /user_message and POST /user_task_execution_run).
    """

    def decorator(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            kwargs["data"] = validate(model, request_fields(location, forms))
            return handler(*args, **kwargs)

        wrapper.input_model = model  # type: ignore[attr-defined]  # read by the OpenAPI builder
        wrapper.input_location = location  # type: ignore[attr-defined]
        wrapper.input_forms = forms  # type: ignore[attr-defined]
        return wrapper

    return decorator


MAX_PAGE_SIZE = 50

# A page size: at least 1; larger requests are served 50 at a time (as Mojodex).
PageSize = Annotated[int, Field(ge=1), AfterValidator(lambda n: min(n, MAX_PAGE_SIZE))]
# Bounded so that PostgreSQL (bigint OFFSET) never sees an out-of-range number.
MAX_OFFSET = 1_000_000_000
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET)]
