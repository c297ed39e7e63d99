"""GET / (the playground page) and its files under /playground/.

A page to try System1 in a browser without writing a client: register or log in,
chat or run a task, watch answers and drafts stream in, edit a draft, see each
message acknowledged. Plain HTML, CSS and JavaScript from web/playground/, with
the socket.io client vendored there (web/playground/vendor/): no build step, no CDN.

The page is documented in the OpenAPI document as text/html (like /docs); its
files, like Swagger UI's, are not part of the API (web/openapi.py
UNDOCUMENTED_ENDPOINTS).
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, Response, send_from_directory

from web.openapi import responds

PLAYGROUND_DIR = Path(__file__).resolve().parent / "playground"
ASSET_PREFIX = "/playground"
# The page and its files change with each release: let browsers revalidate.
ASSET_MAX_AGE_S = 0

# Everything comes from this origin (the page, its files, REST and Socket.IO).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
    "object-src 'none'"
)


def _secured(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@responds(
    str,
    content_type="text/html",
    description="The playground: a page to chat and run tasks in a browser.",
)
def playground_page() -> Response:
    """The playground page (HTML): try the assistant in a browser."""
    response = send_from_directory(PLAYGROUND_DIR, "index.html", max_age=ASSET_MAX_AGE_S)
    return _secured(response)


def playground_asset(asset: str) -> Response:
    response = send_from_directory(PLAYGROUND_DIR, asset, max_age=ASSET_MAX_AGE_S)
    return _secured(response)


def register_playground(app: Flask) -> None:
    app.add_url_rule("/", "playground_page", playground_page, methods=["GET"])
    app.add_url_rule(
        f"{ASSET_PREFIX}/<path:asset>", "playground_asset", playground_asset, methods=["GET"]
    )
