"""`make webapp-check MOJODEX=<dir>`: the Mojodex web app, unchanged, driven against System1.

Given a Mojodex checkout (hoomano/mojodex), this:

1. copies its `webapp/` to ~/.cache/system1/webapp/<commit>/ (reruns reuse node_modules and
   the build; they are redone when package-lock.json or the build's env changes);
2. writes `.env.local` there (docs/mojodex-webapp.md, "Running it");
3. runs `npm ci` and `next build`, with Google Fonts answered offline through Next.js's
   own NEXT_FONT_GOOGLE_MOCKED_RESPONSES hook (a stand-in stylesheet pointing at a local
   DejaVu face): the build machine reaches the npm registry and nothing else;
4. starts System1 as `make run` does (devtools.devstack, fresh DATA_DIR, the web app's
   origin allowed for the socket) and `next start`, both on loopback;
5. drives the core flows in Playwright with Debian's chromium, screenshots in --out;
6. prints one line per step, PASS or FAIL, and exits non-zero if any failed.

The browser's socket URL is baked into the build (NEXT_PUBLIC_SOCKETIO_URI), so the ports
are fixed (--backend-port, --webapp-port) rather than picked at random.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from devtools.chromium import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("SYSTEM1_CACHE", Path.home() / ".cache" / "system1")) / "webapp"
WEBAPP_SECRET = "webapp-check-secret"
JWT_SECRET = "webapp-check-jwt-secret"
FONT_FILE = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
# The ceiling of the done-criteria: no /api path called more often than this in a minute.
MAX_CALLS_PER_MINUTE = 30
FONTS_MOCK = """// Offline stand-in for fonts.googleapis.com (written by devtools/webapp_check.py):
// Next.js's NEXT_FONT_GOOGLE_MOCKED_RESPONSES maps stylesheet URLs to CSS; every URL gets
// one local face, whose absolute path next/font reads from disk instead of fetching it.
const css = `@font-face {
  font-family: 'Hanken Grotesk';
  font-style: normal;
  font-weight: 100 900;
  font-display: swap;
  src: url(%s) format('truetype');
}
`;
module.exports = new Proxy({}, { get: (_t, url) => (typeof url === "string" ? css : undefined) });
"""


def say(message: str) -> None:
    sys.stdout.write(f"{time.strftime('%H:%M:%S')} webapp-check | {message}\n")
    sys.stdout.flush()


def git_commit(checkout: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        lock = (checkout / "webapp" / "package-lock.json").read_bytes()
        return "lock-" + hashlib.sha256(lock).hexdigest()[:16]


def webapp_env(backend: str, webapp: str) -> dict[str, str]:
    """The web app's .env.local (see docs/mojodex-webapp.md)."""
    return {
        "MOJODEX_BACKEND_URI": backend,
        "NEXT_PUBLIC_SOCKETIO_URI": backend,
        "MOJODEX_WEBAPP_SECRET": WEBAPP_SECRET,
        "NEXT_AUTH_JWT_SECRET": JWT_SECRET,
        "NEXTAUTH_SECRET": JWT_SECRET,
        "NEXTAUTH_URL": webapp,
        "MOJODEX_WEBAPP_URI": webapp,
    }


def run_logged(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> None:
    say(f"{' '.join(command)} (log: {log})")
    started = time.monotonic()
    with log.open("w") as out:
        code = subprocess.run(
            command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        ).returncode
    if code != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"{' '.join(command)} failed (code {code}):\n{tail}")
    say(f"  done in {time.monotonic() - started:.0f} s")


def prepare_build(checkout: Path, backend: str, webapp: str) -> Path:
    """Copy, configure, install and build; each step skipped when its inputs are unchanged."""
    source = checkout / "webapp"
    if not (source / "package.json").is_file():
        raise SystemExit(f"{source} has no package.json: give the Mojodex checkout's root")
    build = CACHE / git_commit(checkout)
    build.mkdir(parents=True, exist_ok=True)
    if not (build / ".copied").exists():
        say(f"copying {source} to {build}")
        shutil.copytree(
            source,
            build,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("node_modules", ".next", ".env*"),
        )
        (build / ".copied").touch()
    env_values = webapp_env(backend, webapp)
    (build / ".env.local").write_text("".join(f"{k}={v}\n" for k, v in env_values.items()))
    mock = build / "google-fonts-mock.js"
    mock.write_text(FONTS_MOCK % FONT_FILE)

    env = {
        **os.environ,
        "NEXT_TELEMETRY_DISABLED": "1",
        "NEXT_FONT_GOOGLE_MOCKED_RESPONSES": str(mock),
    }
    lock_stamp = hashlib.sha256((build / "package-lock.json").read_bytes()).hexdigest()
    if _stamp(build, "npm-ci") != lock_stamp or not (build / "node_modules").is_dir():
        run_logged(["npm", "ci", "--no-audit", "--no-fund"], build, env, build / "npm-ci.log")
        _set_stamp(build, "npm-ci", lock_stamp)
    else:
        say("npm ci: node_modules up to date")
    build_stamp = hashlib.sha256(
        (lock_stamp + json.dumps(env_values, sort_keys=True) + FONTS_MOCK).encode()
    ).hexdigest()
    if _stamp(build, "next-build") != build_stamp or not (build / ".next" / "BUILD_ID").exists():
        run_logged(["npx", "next", "build"], build, env, build / "next-build.log")
        _set_stamp(build, "next-build", build_stamp)
    else:
        say("next build: up to date")
    return build


def _stamp(build: Path, name: str) -> str | None:
    path = build / f".stamp-{name}"
    return path.read_text() if path.exists() else None


def _set_stamp(build: Path, name: str, value: str) -> None:
    (build / f".stamp-{name}").write_text(value)


def port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        # As servers do: a port whose last connections linger in TIME_WAIT is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_http(url: str, timeout: float, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} stopped (code {process.returncode}) before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                if response.status < 500:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"{what} did not answer {url} within {timeout:g} s")


def stop(process: subprocess.Popen | None, what: str) -> None:
    """SIGINT to the child's own process group (devstack and next start each lead one)."""
    if process is None or process.poll() is not None:
        return
    say(f"stopping {what}")
    for sig, wait in ((signal.SIGINT, 60), (signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


class Flow:
    """The browser session: steps, screenshots, the request log."""

    def __init__(self, page, out: Path, base: str):
        self.page = page
        self.out = out
        self.base = base
        self.results: list[tuple[str, bool, str]] = []
        self.requests: list[tuple[float, str, str]] = []
        self.shot = 0
        self.last_response: dict[str, dict] = {}
        page.on("request", self._on_request)
        self.responses = (out / "api-responses.jsonl").open("w")
        page.on("response", self._on_response)

    def _on_request(self, request) -> None:
        url = request.url
        if url.startswith(self.base + "/api/"):
            path = url[len(self.base) :].split("?", 1)[0]
            self.requests.append((time.monotonic(), request.method, path))

    def _on_response(self, response) -> None:
        """What System1 answered to the draft, title and todo routes, for the report."""
        url = response.url
        if not url.startswith(self.base + "/api/") or not re.search(
            r"produced_text|title|todos", url
        ):
            return
        try:
            body = response.text()[:600]
        except Exception:  # a body that is gone (navigation) is simply not recorded
            body = None
        record = {"method": response.request.method, "url": url[len(self.base) :]}
        record.update(status=response.status, body=body)
        self.responses.write(json.dumps(record) + "\n")
        self.responses.flush()
        self.last_response[record["url"].split("?", 1)[0]] = record

    def screenshot(self, name: str) -> None:
        self.shot += 1
        path = self.out / f"{self.shot:02d}-{name}.png"
        try:
            self.page.screenshot(path=str(path), full_page=True)
        except Exception as exc:  # a screenshot must not fail the run
            say(f"  screenshot {path.name} failed: {exc}")

    def step(self, name: str, action: Callable[[], str | None]) -> bool:
        say(f"step: {name}")
        try:
            detail = action() or ""
            ok = True
        except Exception as exc:  # every failure is reported, then we go on
            detail = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            traceback.print_exc(limit=3, file=sys.stdout)
            ok = False
        self.screenshot(re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"))
        self.results.append((name, ok, detail))
        say(f"  {'PASS' if ok else 'FAIL'} {detail}")
        return ok

    def busiest_minute(self) -> tuple[int, str]:
        """The most calls one (method, /api path) got in any sliding 60-second window."""
        worst, worst_key = 0, ""
        by_key: dict[str, list[float]] = {}
        for at, method, path in self.requests:
            by_key.setdefault(f"{method} {path}", []).append(at)
        for key, times in by_key.items():
            start = 0
            for end, at in enumerate(times):
                while at - times[start] > 60:
                    start += 1
                if end - start + 1 > worst:
                    worst, worst_key = end - start + 1, key
        return worst, worst_key


def drive(
    out: Path, webapp: str, llm_url: str | None, stack_log: Path
) -> list[tuple[str, bool, str]]:
    from playwright.sync_api import expect, sync_playwright

    def llm_knobs(**knobs: int) -> None:
        """The scripted LLM's speed (devtools.scripted_llm /_control)."""
        if llm_url is None:
            raise AssertionError("the scripted LLM's URL was not found in the stack's log")
        request = urllib.request.Request(
            llm_url.removesuffix("/v1") + "/_control",
            data=json.dumps(knobs).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=5).close()

    email = f"check{int(time.time())}@example.com"
    password = "webapp-check-password"
    state: dict[str, str] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
        context.set_default_timeout(30_000)
        page = context.new_page()
        page.on("console", lambda m: m.type == "error" and say(f"  console: {m.text[:200]}"))
        flow = Flow(page, out, webapp)

        def sign_up() -> str:
            page.goto(f"{webapp}/auth/signup")
            page.fill("#name", "Check User")
            page.fill("#email", email)
            page.fill("#password", password)
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r".*/tasks.*"), timeout=60_000)
            return f"{email} signed up, now at {page.url}"

        def task_list() -> str:
            expect(
                page.get_by_text(re.compile("New task|Start a new task", re.I)).first
            ).to_be_visible()
            return "task list shown"

        def start_task() -> str:
            page.get_by_text(re.compile("New task|Start a new task", re.I)).first.click()
            modal_task = (
                page.get_by_role("dialog").locator("div.cursor-pointer.rounded.border").first
            )
            modal_task.wait_for()
            lines = [line for line in modal_task.inner_text().splitlines() if line.strip()]
            state["task_name"] = lines[1] if len(lines) > 1 else lines[0]
            modal_task.click()
            page.wait_for_url(re.compile(r".*/tasks/create.*"))
            page.locator("textarea").first.wait_for()
            answers = iter(("The Acme team", "Thank them for the launch", "Short and warm"))
            for area in page.locator("textarea").all():
                area.fill(next(answers, "Nothing more"))
            page.get_by_role("button", name="Go", exact=True).click()
            page.wait_for_url(re.compile(r".*/tasks/(?!create)[^/?#]+$"), timeout=60_000)
            state["task_url"] = page.url
            return f"task {state['task_name']!r} started: {page.url}"

        def first_answer() -> str:
            question = page.get_by_text("I need one more detail").first
            question.wait_for(timeout=60_000)
            return "assistant's question shown in the chat panel"

        def answer() -> str:
            box = page.locator("textarea").last
            expect(box).to_be_enabled(timeout=30_000)
            llm_knobs(token_interval_ms=120)  # slow enough to watch the draft stream
            box.fill("For the whole Acme team, warm and short")
            box.press("Enter")
            page.get_by_text("For the whole Acme team, warm and short").first.wait_for()
            return "answer sent"

        def draft_streams() -> str:
            # The answer was sent with the LLM slowed down (see `answer`): sample the
            # draft's text while it arrives; a stream shows several growing prefixes.
            lengths: list[int] = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                text = page.evaluate("() => document.body.innerText")
                at = text.find("Draft for")
                if at >= 0:
                    draft = text[at:]
                    end = draft.find("Best regards")
                    if end >= 0:
                        break
                    if not lengths or len(draft) != lengths[-1]:
                        lengths.append(len(draft))
                page.wait_for_timeout(100)
            else:
                raise AssertionError("the draft never showed its last line")
            llm_knobs(ttft_ms=0, token_interval_ms=0)
            if len(lengths) < 3:
                raise AssertionError(f"draft not seen streaming: partial lengths {lengths}")
            return (
                f"draft grew through {len(lengths)} partial states "
                f"({lengths[0]}..{lengths[-1]} chars) to the end"
            )

        def edit_draft() -> str:
            editor = page.locator("[contenteditable=true]").last
            editor.click()
            page.keyboard.press("Control+End")
            page.keyboard.type(" Edited by the check.")
            with page.expect_response(
                lambda r: "/api/produced_text" in r.url and r.request.method == "POST",
                timeout=30_000,
            ) as saved:
                pass
            return f"edit saved: {saved.value.status}"

        def versions() -> str:
            # System1's answers are checked first (version 1 without the edit, version 2
            # with it), then what the editor shows. The web app's editor follows the
            # `text` of its last loaded version (Result/UpdatePlugin.tsx): right after an
            # edit that is still version 1's text, so the first Previous, which loads that
            # same text, changes nothing on screen. Next, then Previous again, do.
            def shown() -> str:
                page.wait_for_timeout(1500)
                return page.locator("[contenteditable]").last.inner_text()

            def go(link: str, index: int, edited: bool) -> str:
                # A version read once is served from react-query's cache afterwards.
                calls = len(flow.requests)
                page.get_by_text(link, exact=True).click()
                text = shown()
                answered = flow.last_response.get(
                    "/api/task/user_task_execution_produced_text", {}
                ).get("body")
                if any("produced_text" in p for _, _, p in flow.requests[calls:]) and answered:
                    body = json.loads(answered)
                    if body.get("produced_text_version_index") != index or edited != (
                        "Edited by the check" in body.get("produced_text_production", "")
                    ):
                        raise AssertionError(f"{link}: System1 answered {body}")
                return text

            first_previous = go("Previous", 1, edited=False)
            quirk = "Edited by the check" in first_previous
            if "Edited by the check" not in go("Next", 2, edited=True):
                raise AssertionError("Next did not show version 2 (the edit)")
            if "Edited by the check" in go("Previous", 1, edited=False):
                raise AssertionError("Previous did not show version 1")
            if "Edited by the check" not in go("Next", 2, edited=True):
                raise AssertionError("Next did not show version 2 again")
            note = (
                " (the first Previous after the edit left the editor unchanged: the web "
                "app's UpdatePlugin sees the same text as before the edit)"
                if quirk
                else ""
            )
            return f"versions 1 and 2 answered by System1 and shown in turn{note}"

        def change_title() -> str:
            title_block = page.locator("div.flex.flex-row.items-center[tabindex='0']").first
            title_block.locator("button").click()
            field = title_block.locator("input[type=text]")
            field.fill("Renamed by the check")
            with page.expect_response(
                lambda r: "user_task_execution_title" in r.url, timeout=30_000
            ) as saved:
                field.press("Enter")
            return f"title saved: {saved.value.status}"

        def todos() -> str:
            tab = page.get_by_role("tab", name=re.compile("Todos"))
            tab.click()
            reloaded = ""
            try:
                expect(tab).to_have_attribute("aria-selected", "true", timeout=5000)
            except AssertionError:
                # The tab is enabled by the execution's produced_text_pk, which the page
                # read before the draft existed: only a reload refreshes it.
                page.reload()
                tab.click()
                expect(tab).to_have_attribute("aria-selected", "true", timeout=10_000)
                reloaded = " (the Todos tab stayed disabled until a reload)"
            first = page.get_by_text(re.compile("^Send the result of"))
            try:
                first.first.wait_for(timeout=30_000)
            except Exception as exc:
                text = page.locator("body").inner_text()
                shown = text[text.find("Initial inputs") :][:200]
                errors = re.findall(r"extract_todos\[[^]]+\] raised [^\n]+", stack_log.read_text())
                raise AssertionError(
                    f"no todo after 30 s; the page shows: {shown!r}; the todo worker: {errors}"
                ) from exc
            counts = {
                "send": first.count(),
                "follow up": page.get_by_text(re.compile("^Follow up on")).count(),
            }
            if counts != {"send": 1, "follow up": 1}:
                raise AssertionError(f"todos not shown once each: {counts}")
            return f"both todos shown once{reloaded}"

        def reload_all() -> str:
            page.reload()
            page.get_by_text("Renamed by the check").first.wait_for(timeout=30_000)
            page.get_by_text("Edited by the check", exact=False).first.wait_for()
            page.get_by_text("I need one more detail").first.wait_for()
            page.get_by_text("For the whole Acme team, warm and short").first.wait_for()
            return "title, edited draft and conversation found after reload"

        def no_duplicates() -> str:
            page.get_by_role("tab", name=re.compile("Results")).click()
            page.wait_for_timeout(8000)  # longer than a resend period
            messages = {
                "question": page.get_by_text(re.compile(r'^For ".*", I need one more detail')),
                "answer": page.get_by_text("For the whole Acme team, warm and short", exact=True),
                "result": page.get_by_text("Here is the result.", exact=True),
            }
            counts = {name: locator.count() for name, locator in messages.items()}
            # The web app's history (helpers/method.ts updateTaskMessageFormat) leaves out
            # an assistant message that carries a draft: after a reload the draft's chat
            # line is gone by design, so "result" may be 0 but never 2.
            if counts["result"] > 1 or counts["question"] != 1 or counts["answer"] != 1:
                raise AssertionError(f"chat messages not shown exactly once: {counts}")
            return f"each chat message once: {counts}"

        steps = [
            ("sign up", sign_up),
            ("reach the task list", task_list),
            ("start a task from its form", start_task),
            ("first answer in the chat panel", first_answer),
            ("answer it", answer),
            ("watch the draft stream", draft_streams),
            ("edit the draft", edit_draft),
            ("step through versions", versions),
            ("change the title", change_title),
            ("see todos appear", todos),
            ("reload and find it all", reload_all),
            ("no duplicated message on the page", no_duplicates),
        ]
        for name, action in steps:
            flow.step(name, action)
        worst, key = flow.busiest_minute()
        flow.results.append(
            (
                f"no /api path over {MAX_CALLS_PER_MINUTE} calls a minute",
                worst <= MAX_CALLS_PER_MINUTE,
                f"busiest: {key} {worst} in 60 s",
            )
        )
        counts = Counter(f"{m} {p}" for _, m, p in flow.requests)
        (out / "api-requests.json").write_text(json.dumps(counts.most_common(), indent=1))
        browser.close()
    return flow.results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mojodex", type=Path, help="a Mojodex checkout (hoomano/mojodex)")
    parser.add_argument("--backend-port", type=int, default=5130)
    parser.add_argument("--webapp-port", type=int, default=3130)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "webapp")
    args = parser.parse_args(argv)
    started = time.monotonic()
    backend = f"http://127.0.0.1:{args.backend_port}"
    webapp = f"http://127.0.0.1:{args.webapp_port}"
    for port in (args.backend_port, args.webapp_port):
        if not port_free(port):
            raise SystemExit(f"port {port} is in use: stop what uses it or pick another port")
    if not CHROMIUM.exists():
        raise SystemExit(f"no chromium at {CHROMIUM}: `make browser` installs it")

    build = prepare_build(args.mojodex.resolve(), backend, webapp)
    built = time.monotonic()
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    data_dir = Path(tempfile.mkdtemp(prefix="system1-webapp-check-"))
    stack = next_server = None
    try:
        stack_env = {
            **os.environ,
            "PORT": str(args.backend_port),
            "HOST": "127.0.0.1",
            "DATA_DIR": str(data_dir),
            "MOJODEX_WEBAPP_SECRET": WEBAPP_SECRET,
            "CORS_ALLOWED_ORIGINS": webapp,
        }
        for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
            stack_env.pop(name, None)
        say(f"starting System1 on {backend} (DATA_DIR {data_dir}; log {args.out / 'system1.log'})")
        stack = subprocess.Popen(
            [sys.executable, "-m", "devtools.devstack"],
            cwd=ROOT,
            env=stack_env,
            stdout=(args.out / "system1.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_http(f"{backend}/health", 180, stack, "System1")
        say(f"starting the web app on {webapp} (log {args.out / 'webapp.log'})")
        next_server = subprocess.Popen(
            ["npx", "next", "start", "-H", "127.0.0.1", "-p", str(args.webapp_port)],
            cwd=build,
            env={**os.environ, "NEXT_TELEMETRY_DISABLED": "1"},
            stdout=(args.out / "webapp.log").open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_http(f"{webapp}/auth/signin", 120, next_server, "next start")
        ready = time.monotonic()
        found = re.search(
            r"scripted LLM listening on (http://\S+)", (args.out / "system1.log").read_text()
        )
        results = drive(
            args.out, webapp, found.group(1) if found else None, args.out / "system1.log"
        )
    finally:
        stop(next_server, "the web app")
        stop(stack, "System1")
        shutil.rmtree(data_dir, ignore_errors=True)
    finished = time.monotonic()
    print()
    for name, ok, detail in results:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    print(
        f"\nbuild {built - started:.0f} s, start {ready - built:.0f} s, "
        f"flows {finished - ready:.0f} s; screenshots in {args.out}"
    )
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
