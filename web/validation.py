"""Request input: read the right part of the request and validate it with pydantic.

Each route declares its input model next to its handler with `@use_input`.
A missing field is a 400 naming the field; a present but invalid value is a
422 naming the field; a body of an unsupported type is a 415.
"""

from __future__ import annotations

import functools
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


def _body_fields() -> dict[str, Any]:
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
    if request.mimetype in FORM_TYPES:
        return request.form.to_dict()
    raise UnsupportedMediaType(
        "Send the body as application/json or multipart/form-data "
        f"(got {request.mimetype or 'no content type'})."
    )


def request_fields(location: Location) -> dict[str, Any]:
    """The raw input fields of the current request for a location."""
    if location == "query":
        return request.args.to_dict()
    if location == "body":
        return _body_fields()
    return {**request.args.to_dict(), **_body_fields()}


def _field_name(error: dict[str, Any]) -> str:
    return ".".join(str(part) for part in error["loc"]) or "body"


def validate(model: type[M], fields: dict[str, Any]) -> M:
    """Validate fields against a model, raising a client error naming the field."""
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


def use_input(model: type[M], location: Location) -> Callable[[Callable[..., Any]], Any]:
    """Decorate a Resource method: it receives the validated input as `data`."""

    def decorator(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            kwargs["data"] = validate(model, request_fields(location))
            return handler(*args, **kwargs)

        wrapper.input_model = model  # type: ignore[attr-defined]  # read by the OpenAPI builder
        wrapper.input_location = location  # type: ignore[attr-defined]
        return wrapper

    return decorator


MAX_PAGE_SIZE = 50

# A page size: at least 1; larger requests are served 50 at a time (as Mojodex).
PageSize = Annotated[int, Field(ge=1), AfterValidator(lambda n: min(n, MAX_PAGE_SIZE))]
Offset = Annotated[int, Field(ge=0)]
