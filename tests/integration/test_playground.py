"""The playground page at /, used as a person would: in headless Chromium.

Debian's chromium (/usr/bin/chromium, installed by `make browser`) is driven by
Playwright against the session's stack: register, chat a full turn, run a task
to its draft, edit the draft. Screenshots land in tests/artifacts/. Without
chromium (or Playwright) the browser tests skip and say why; the HTTP tests of
the page itself always run.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from devtools.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.support.clients import Api, SocketClient, User
from tests.support.processes import ROOT

ARTIFACTS = ROOT / "tests" / "artifacts"
VIEWPORT = {"width": 1360, "height": 860}
# The scripted LLM's pace in the browser tests: slow enough to see answers grow.
SLOW_TOKEN_INTERVAL_MS = 40
TURN_TIMEOUT_MS = 30_000
PASSWORD = "correct horse battery"

# ---------------------------------------------------------------- the page over HTTP


def test_the_page_is_served_at_the_root_with_its_files(api: Api) -> None:
    page = api.call("GET", "/")
    script = api.call("GET", "/playground/app.js")
    vendored = api.call("GET", "/playground/vendor/socket.io.min.js")

    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "System1 playground" in page.text
    assert "/playground/vendor/socket.io.min.js" in page.text
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    assert vendored.status_code == 200
    assert vendored.text.startswith("/* Vendored") and "socket.io-client@4." in vendored.text[:300]
    # Nothing from elsewhere: no CDN, no absolute URL in the page.
    assert not re.search(r"""(src|href)=["']https?://""", page.text)


def test_the_page_serves_only_its_own_files(api: Api) -> None:
    assert api.call("GET", "/playground/nope.js").status_code == 404
    assert api.call("GET", "/playground/../playground.py").status_code == 404
    assert api.call("GET", "/playground/%2e%2e/playground.py").status_code == 404


def test_the_page_is_documented_and_its_files_are_not(api: Api) -> None:
    document = api.call("GET", "/openapi.json").json()

    root = document["paths"]["/"]["get"]
    assert "text/html" in root["responses"]["200"]["content"]
    assert not any(path.startswith("/playground") for path in document["paths"])


# ---------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"browser tests need Debian's chromium at {CHROMIUM}, which is missing: "
            "`make browser` installs it (as root, apt-get install chromium)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests need Playwright: pip install -r requirements-dev.txt")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, stack: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context on the stack; a screenshot of how the test left it
    in tests/artifacts/, and no JavaScript error or CSP violation allowed."""
    context = browser.new_context(
        base_url=stack.base_url, viewport=VIEWPORT, color_scheme="light", locale="en-GB"
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"JavaScript error: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )
    try:
        yield page
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        try:
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"))
        finally:
            context.close()
    assert problems == []


@pytest.fixture
def slow_llm(llm_url: str) -> Iterator[None]:
    """The scripted LLM streams slowly during the test, so that the page shows answers
    and drafts growing (as a directive would, without showing in the messages)."""
    control = llm_url.removesuffix("/v1") + "/_control"
    original = requests.get(control, timeout=5).json()
    answer = requests.post(control, json={"token_interval_ms": SLOW_TOKEN_INTERVAL_MS}, timeout=5)
    answer.raise_for_status()
    try:
        yield
    finally:
        requests.post(control, json=original, timeout=5).raise_for_status()


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def log_in(page: Any, user: User) -> None:
    page.goto("/")
    page.locator("#login-email").fill(user.email)
    page.locator("#login-password").fill(user.password)
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.locator("#connection")).to_have_text("live")


def assert_nothing_left_to_deliver(stack: Any, user: User, session_id: str) -> None:
    """The page's acks were stored: a socket joining now gets no replay."""
    time.sleep(0.5)
    client = SocketClient(stack.base_url, user.token, ack=False).connect()
    try:
        assert client.start_session(session_id) == {"session_id": session_id, "joined": True}
        for event in ("mojo_message", "draft_message"):
            with pytest.raises(TimeoutError):
                client.wait_for(event, timeout=1.5)
    finally:
        client.close()


def record(page: Any, root: str, state_of: str, text_of: str) -> None:
    """Record, at each change under `root`, the state (data-state attribute, else
    text) of `state_of` and the text length of `text_of`: what a person saw."""
    page.evaluate(
        """([root, stateOf, textOf]) => {
          window.samples = [];
          new MutationObserver(() => {
            const state = document.querySelector(stateOf);
            const text = document.querySelector(textOf);
            if (!state || !text) return;
            window.samples.push([
              state.dataset.state || state.textContent, text.textContent.length,
            ]);
          }).observe(document.querySelector(root),
                     {subtree: true, childList: true, characterData: true, attributes: true});
        }""",
        [root, state_of, text_of],
    )


def assert_grew(page: Any, state: str) -> None:
    """While in `state` (streaming), the text was shown growing, several times."""
    samples = page.evaluate("window.samples")
    lengths = [length for shown, length in samples if shown == state]
    assert len(set(lengths)) >= 3, samples
    assert lengths == sorted(lengths), samples


def test_a_wrong_password_is_told_on_the_page(page: Any, user: User) -> None:
    page.goto("/")
    page.locator("#login-email").fill(user.email)
    page.locator("#login-password").fill("not the password")
    page.get_by_role("button", name="Log in", exact=True).click()

    expect(page.get_by_role("alert").first).to_contain_text("password")
    expect(page.locator("#app-view")).to_be_hidden()


def test_register_and_chat_a_full_turn(page: Any, api: Api, stack: Any, slow_llm: None) -> None:
    email = f"grace-{secrets.token_hex(4)}@example.com"
    page.goto("/")
    expect(page.get_by_role("heading", name="Try the assistant")).to_be_visible()
    page.get_by_role("tab", name="Register").click()
    page.locator("#register-name").fill("Grace")
    page.locator("#register-email").fill(email)
    page.locator("#register-password").fill(PASSWORD)
    page.get_by_role("button", name="Create the account").click()
    expect(page.locator("#whoami")).to_have_text("Signed in as Grace")
    expect(page.locator("#connection")).to_have_text("live")

    record(page, "#messages", ".message.mojo:last-of-type", ".message.mojo:last-of-type .bubble")
    composer = page.get_by_label("Your message")
    composer.fill("Hello from the browser! What can you do?")
    composer.press("Enter")

    mine = page.locator(".message.user").last
    expect(mine.locator(".bubble")).to_contain_text("Hello from the browser")
    answer = page.locator(".message.mojo").last
    # The answer streams in (mojo_token), then is final (mojo_message) and acknowledged.
    expect(answer).to_have_attribute("data-state", "final", timeout=TURN_TIMEOUT_MS)
    expect(answer.locator(".status")).to_have_text("acknowledged ✓")
    expect(mine.locator(".status")).to_have_text("received ✓")
    assert_grew(page, "streaming")
    shown = answer.locator(".bubble").inner_text()
    assert "Hello from the browser" in shown
    assert "[llm:" not in shown

    # The server has the same two messages, and the page's ack.
    user = User(email, PASSWORD, "", "")
    login = api.call("POST", "/user", json={"email": email, "password": PASSWORD})
    user.token = login.json()["token"]
    sessions = api.call("GET", "/session", user.token).json()["sessions"]
    assert len(sessions) == 1
    session_id = sessions[0]["session_id"]
    stored = api.messages(user, session_id)
    assert [m["sender"] for m in stored] == ["mojo", "user"]
    assert stored[0]["message"]["text"] == shown
    assert_nothing_left_to_deliver(stack, user, session_id)

    # The chat is listed; after logging out and in again, it opens with its history.
    chat = page.locator("#session-list button").first
    expect(chat).to_contain_text("Hello from the browser")
    page.get_by_role("button", name="Log out").click()
    expect(page.locator("#auth-view")).to_be_visible()
    log_in(page, user)
    page.locator("#session-list button").first.click()
    expect(page.locator(".message")).to_have_count(2)
    expect(page.locator(".message.mojo .bubble")).to_have_text(shown)
    expect(page.locator("#session-list button").first).to_have_attribute("aria-current", "true")


def test_a_task_from_its_form_to_an_edited_draft(
    page: Any, api: Api, user: User, stack: Any, slow_llm: None
) -> None:
    log_in(page, user)
    page.locator("#task-list button", has_text="Write an email").click()

    form = page.locator("#task-form")
    expect(form.get_by_role("heading", name="Write an email")).to_be_visible()
    expect(page.locator("#draft-panel")).to_be_visible()
    expect(page.locator("#draft-text")).to_contain_text("The draft appears here")
    page.get_by_label("Who is it for?").fill("Sarah, my manager")
    page.get_by_label("What should the email achieve?").fill("ask for a day off on Friday")
    page.get_by_role("button", name="Start the task").click()

    # The assistant asks a question first.
    expect(form).to_be_hidden()
    expect(page.locator(".message.system .bubble")).to_contain_text("recipient: Sarah")
    question = page.locator(".message.mojo").first
    expect(question.locator(".bubble")).to_contain_text("what tone?", timeout=TURN_TIMEOUT_MS)
    expect(question.locator(".status")).to_have_text("acknowledged ✓")

    record(page, "#draft-panel", "#draft-status", "#draft-text")
    composer = page.get_by_label("Your message")
    composer.fill("Friendly, please, and keep it short")
    composer.press("Enter")

    status = page.locator("#draft-status")
    expect(status).to_have_text("v1 acknowledged ✓", timeout=TURN_TIMEOUT_MS)
    expect(page.locator("#draft-title")).to_have_text("Write an email")
    draft_text = page.locator("#draft-text")
    expect(draft_text).to_contain_text("Draft for Write an email.")
    expect(draft_text).to_contain_text("Based on: Friendly, please, and keep it short.")
    expect(page.locator("#draft-versions button")).to_have_text(["v1"])
    assert_grew(page, "writing")
    result = page.locator(".message.mojo").last
    expect(result.locator(".bubble")).to_have_text("Here is the result.")
    expect(result.locator(".draft-chip")).to_have_text("Draft v1 →")
    expect(result.locator(".status")).to_have_text("acknowledged ✓")
    expect(page.locator("#conversation-title")).to_have_text("Write an email: first draft")
    expect(page.locator("#execution-list button").first).to_contain_text("draft v1")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "playground-task-draft.png"))
    page.emulate_media(color_scheme="dark")
    page.screenshot(path=str(ARTIFACTS / "playground-task-draft-dark.png"))
    page.emulate_media(color_scheme="light")

    execution = api.call("GET", "/user_task_execution", user.token).json()["user_task_executions"][
        0
    ]
    assert execution["produced_text_production"] == draft_text.inner_text()
    assert_nothing_left_to_deliver(stack, user, execution["session_id"])

    # Edit the draft: a second version, by the user.
    page.get_by_role("button", name="Edit").click()
    edited = "Hi Sarah,\n\nCould I take Friday off?\n\nThanks,\nAda"
    page.get_by_label("Text", exact=True).fill(edited)
    page.get_by_role("button", name="Save as a new version").click()

    expect(page.locator("#draft-versions button")).to_have_text(["v1", "v2 · you"])
    expect(status).to_have_text("v2 saved ✓")
    expect(draft_text).to_have_text(edited)
    stored = api.call(
        "GET",
        "/produced_text",
        user.token,
        params={"produced_text_pk": execution["produced_text_pk"]},
    ).json()
    assert stored["production"] == edited
    assert stored["produced_text_version_index"] == 2

    # Every version stays readable.
    page.locator("#draft-versions button", has_text="v1").click()
    expect(draft_text).to_contain_text("Draft for Write an email.")
    expect(status).to_have_text("v1 acknowledged ✓")


def test_stop_ends_a_streaming_answer_with_the_text_shown(
    page: Any, api: Api, user: User, stack: Any
) -> None:
    log_in(page, user)
    stop = page.get_by_role("button", name="Stop")
    expect(stop).to_be_hidden()
    composer = page.get_by_label("Your message")
    composer.fill("A long story please [llm:words=200] [llm:token_interval_ms=100]")
    composer.press("Enter")

    answer = page.locator(".message.mojo").last
    expect(answer).to_have_attribute("data-state", "streaming", timeout=TURN_TIMEOUT_MS)
    expect(answer.locator(".bubble")).to_contain_text("scripted answer")
    expect(stop).to_be_visible()
    stop.click()

    # The answer ends at once with what was shown, marked stopped, and is acknowledged.
    expect(answer).to_have_attribute("data-state", "final", timeout=5_000)
    expect(answer).to_have_attribute("data-stopped", "true")
    expect(answer.locator(".status")).to_have_text("acknowledged ✓")
    expect(stop).to_be_hidden()
    shown = answer.locator(".bubble").inner_text()
    sessions = api.call("GET", "/session", user.token).json()["sessions"]
    stored = api.messages(user, sessions[0]["session_id"])[0]["message"]
    assert stored["stopped"] is True
    assert stored["text"] == shown
    assert 0 < len(shown.split()) < 200
