"""The API contract: GET /openapi.json agrees with the routes the app really
registers, is valid OpenAPI 3.1, documents every answer and the Socket.IO
events; GET /docs renders it with Swagger UI served by the app itself."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from tests.support.clients import Api
from tests.support.documented import (
    PUBLIC_OPERATIONS,
    document_operations,
    registered_operations,
)

ROOT = Path(__file__).resolve().parents[2]
SOCKETIO_DOC = ROOT / "docs" / "socketio.md"

ERROR_REF = {"$ref": "#/components/schemas/Error"}


@pytest.fixture(scope="module")
def document(stack) -> dict[str, Any]:
    response = Api(stack.base_url).call("GET", "/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


def operations(document: dict[str, Any]):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        *_, kind, name = node["$ref"].split("/")
        node = document["components"][kind][name]
    return node


# --- The document and the routes agree ------------------------------------------------------


def test_every_registered_route_is_in_the_document(document):
    missing = registered_operations() - document_operations(document)

    assert not missing, f"registered but not documented: {sorted(missing)}"


def test_the_document_names_no_route_that_does_not_exist(document):
    unknown = document_operations(document) - registered_operations()

    assert not unknown, f"documented but not registered: {sorted(unknown)}"


def test_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")

    validate(document)


def test_every_operation_declares_its_success_answer(document):
    undeclared = [label for label, op in operations(document) if op.get("x-undeclared-response")]

    assert not undeclared, f"add @responds(Model) to: {undeclared}"


def test_every_success_answer_has_a_schema(document):
    for label, operation in operations(document):
        answer = resolve(document, operation["responses"]["200"])
        assert answer.get("content"), label
        for media in answer["content"].values():
            assert media.get("schema"), label


def test_every_error_answer_uses_the_error_schema(document):
    for label, operation in operations(document):
        for status, answer in operation["responses"].items():
            if int(status) < 400 or label == "GET /health":
                continue
            content = resolve(document, answer)["content"]
            assert content["application/json"]["schema"] == ERROR_REF, (label, status)


def test_error_schema_is_one_error_sentence(document):
    schema = document["components"]["schemas"]["Error"]

    assert schema["required"] == ["error"]
    assert schema["properties"]["error"]["type"] == "string"


def test_every_operation_but_the_public_ones_needs_credentials(document):
    open_operations = {label for label, op in operations(document) if not op.get("security")}

    assert open_operations == PUBLIC_OPERATIONS


def test_token_is_an_authorization_header(document):
    scheme = document["components"]["securitySchemes"]["token"]

    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "Authorization")


def test_rate_limited_operations_document_429_with_retry_after(document):
    limited = {label for label, op in operations(document) if "429" in op["responses"]}
    answer = resolve(document, document["paths"]["/user"]["post"]["responses"]["429"])

    assert {"PUT /user", "POST /user", "PUT /user_message"} <= limited
    assert answer["headers"]["Retry-After"]["required"] is True


def test_body_operations_document_413_and_415(document):
    for label, operation in operations(document):
        if "requestBody" in operation:
            assert {"413", "415"} <= set(operation["responses"]), label


@pytest.mark.parametrize("path", ["/user_message", "/user_task_execution_run"])
def test_form_routes_document_multipart_bodies(document, path):
    method = "put" if path == "/user_message" else "post"
    content = document["paths"][path][method]["requestBody"]["content"]

    assert {"application/json", "multipart/form-data"} <= set(content)


def test_other_bodies_are_json_only(document):
    for label, operation in operations(document):
        if "requestBody" in operation and label not in {
            "PUT /user_message",
            "POST /user_task_execution_run",
        }:
            assert set(operation["requestBody"]["content"]) == {"application/json"}, label


def test_query_operations_document_their_parameters(document):
    parameters = document["paths"]["/message"]["get"]["parameters"]
    by_name = {p["name"]: p for p in parameters}

    assert by_name["session_id"]["required"] is True
    assert by_name["session_id"]["in"] == "query"
    assert by_name["offset_direction"]["schema"]["enum"] == ["older", "newer"]
    assert by_name["n_messages"]["required"] is False


# --- Socket.IO events ---------------------------------------------------------------------------


# The Socket.IO events of the protocol (shared/docs/protocol.md, "Socket.IO"), written
# out here because the test suite must run where that file is not beside the project.
PROTOCOL_EVENTS = {
    "start_session",
    "user_message_reception",
    "user_task_execution_start",
    "mojo_token",
    "draft_token",
    "mojo_message",
    "draft_message",
    "user_task_execution_title",
    "error",
}


def protocol_events() -> set[str]:
    """The event names of the protocol's Socket.IO section."""
    return PROTOCOL_EVENTS


def test_document_describes_every_socketio_event_of_the_protocol(document):
    events = document["x-socketio"]["events"]
    documented = set(events["client_to_server"]) | set(events["server_to_client"])

    assert documented == protocol_events()


def test_socketio_payloads_have_schemas(document):
    for direction in ("client_to_server", "server_to_client"):
        for name, event in document["x-socketio"]["events"][direction].items():
            schema = resolve(document, event["payload"])
            assert schema["type"] == "object", name
            if direction == "server_to_client":
                assert "session_id" in schema["properties"], name


def test_acknowledged_events_document_their_ack(document):
    events = document["x-socketio"]["events"]["server_to_client"]
    ack = resolve(document, events["mojo_message"]["ack"])

    assert set(ack["required"]) == {"session_id", "message_pk"}
    assert "ack" in events["draft_message"]


def test_socketio_docs_page_explains_every_event(document):
    text = SOCKETIO_DOC.read_text()
    events = document["x-socketio"]["events"]

    for name in set(events["client_to_server"]) | set(events["server_to_client"]):
        assert f"`{name}`" in text, name


def test_document_description_lists_the_socketio_events(document):
    description = document["info"]["description"]

    for name in protocol_events():
        assert f"`{name}`" in description, name


# --- Swagger UI -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def docs_page(stack):
    return Api(stack.base_url).call("GET", "/docs")


def page_assets(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


def test_docs_is_an_html_page_that_loads_the_document(docs_page):
    assert docs_page.status_code == 200
    assert docs_page.headers["Content-Type"].startswith("text/html")
    assert 'url: "/openapi.json"' in docs_page.text
    assert "SwaggerUIBundle(" in docs_page.text


def test_docs_page_loads_nothing_from_another_host(docs_page):
    assets = page_assets(docs_page.text)

    assert assets
    for asset in assets:
        assert asset.startswith("/docs/") and not asset.startswith("//"), asset
    assert "http://" not in docs_page.text and "https://" not in docs_page.text


def test_docs_assets_are_served_by_the_app(stack, docs_page):
    api = Api(stack.base_url)

    for asset in page_assets(docs_page.text):
        response = api.call("GET", asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 100, asset


def test_docs_scripts_and_styles_have_their_content_types(stack, docs_page):
    api = Api(stack.base_url)
    kinds = {
        asset.rsplit(".", 1)[-1]: api.call("GET", asset).headers["Content-Type"]
        for asset in page_assets(docs_page.text)
    }

    assert "javascript" in kinds["js"]
    assert kinds["css"].startswith("text/css")


def test_unknown_docs_asset_is_a_json_404(stack):
    response = Api(stack.base_url).call("GET", "/docs/no-such-file.js")

    assert response.status_code == 404
    assert response.json()["error"]


def test_docs_assets_cannot_escape_their_folder(stack):
    response = Api(stack.base_url).call("GET", "/docs/..%2F..%2Fweb%2F__init__.py")

    assert response.status_code == 404
