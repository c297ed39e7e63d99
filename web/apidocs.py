"""GET /openapi.json (the document) and GET /docs (Swagger UI).

Swagger UI's files come from the `flask-swagger-ui` package and are served by
this app under /docs/: no CDN, nothing fetched from elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from flask import Flask, Response, jsonify, send_from_directory, url_for

from web.openapi import cached_document, responds

SWAGGER_UI_DIR = Path(flask_swagger_ui.__file__).resolve().parent / "dist"
ASSET_MAX_AGE_S = 24 * 3600

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>System1 API</title>
  <link rel="stylesheet" href="{css}">
  <link rel="icon" type="image/png" href="{icon}">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{bundle}"></script>
  <script src="{preset}"></script>
  <script>
    window.onload = function () {{
      window.ui = SwaggerUIBundle({{
        url: "{document}",
        dom_id: "#swagger-ui",
        deepLinking: true,
        persistAuthorization: true,
        validatorUrl: null,
        presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
        layout: "StandaloneLayout"
      }});
    }};
  </script>
</body>
</html>
"""


@responds(dict, content_type="application/json", description="This document.")
def openapi_document() -> Response:
    """The OpenAPI 3.1 document of the REST API (and the Socket.IO events)."""
    return jsonify(cached_document())


@responds(str, content_type="text/html", description="Swagger UI, rendering /openapi.json.")
def docs_page() -> Response:
    """Swagger UI for this API."""

    def asset(name: str) -> str:
        return url_for("docs_asset", asset=name)

    html = PAGE.format(
        css=asset("swagger-ui.css"),
        icon=asset("favicon-32x32.png"),
        bundle=asset("swagger-ui-bundle.js"),
        preset=asset("swagger-ui-standalone-preset.js"),
        document=url_for("openapi_document"),
    )
    return Response(html, mimetype="text/html")


def docs_asset(asset: str) -> Response:
    return send_from_directory(SWAGGER_UI_DIR, asset, max_age=ASSET_MAX_AGE_S)


def register_api_docs(app: Flask) -> None:
    app.add_url_rule("/openapi.json", "openapi_document", openapi_document, methods=["GET"])
    app.add_url_rule("/docs", "docs_page", docs_page, methods=["GET"])
    app.add_url_rule("/docs/<path:asset>", "docs_asset", docs_asset, methods=["GET"])
