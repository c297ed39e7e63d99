"""The app's routes and its OpenAPI document, seen from inside the test process.

`create_app()` connects to nothing until a request comes, so the tests can
build the app here to read its registered routes (`url_map`) and the document
the code produces, and list them at collection time (one test per operation).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from flask import Flask

# The operations anyone may call; every other one needs a token (or, for the
# task catalogue, the backoffice secret).
PUBLIC_OPERATIONS = frozenset(
    {
        "PUT /user",
        "POST /user",
        "GET /health",
        "GET /metrics",
        "GET /openapi.json",
        "GET /docs",
        "GET /",  # the playground page (web/playground.py)
        "GET /language",  # the languages to pick from, asked before sign-in (Mojodex too)
    }
)


@lru_cache(maxsize=1)
def local_app() -> Flask:
    from web import create_app

    return create_app()


@lru_cache(maxsize=1)
def local_document() -> dict[str, Any]:
    from web.openapi import build_document

    return build_document(local_app())


def document_operations(document: dict[str, Any]) -> set[str]:
    """'METHOD /path' of every operation a document names."""
    return {
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method in operations
    }


def registered_operations() -> set[str]:
    """'METHOD /path' of every route the app answers (not static files)."""
    from web.openapi import IGNORED_METHODS, UNDOCUMENTED_ENDPOINTS, openapi_path

    app = local_app()
    return {
        f"{method} {openapi_path(rule.rule)[0]}"
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in UNDOCUMENTED_ENDPOINTS
        for method in (rule.methods or set()) - IGNORED_METHODS
    }


def documented_operations() -> list[str]:
    """The operations of the document the code builds, sorted."""
    return sorted(document_operations(local_document()))
