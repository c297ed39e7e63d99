"""`python -m client`: chat or run a task from a terminal, answers streamed live.

    python -m client chat --url http://127.0.0.1:5000 --email demo@system1.local
    python -m client chat --new --message "Hello!"           # one-shot, then exit
    python -m client task --task "Write an email" --input recipient="my manager" \\
        --input purpose="a day off on Friday" --message "Friendly tone"
    python -m client list                                     # chats and task runs

Messages come from `--message` (repeatable), else from the standard input when it is
not a terminal (one message a line), else from a prompt (`/quit` or Ctrl-D ends it;
`/draft` shows the draft, `/edit` replaces it with what you type).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.prompt import Prompt
from rich.table import Table
from rich.text import Text

from client.api import Api, ApiError
from client.live import Draft, LiveSession, TurnError, draft_panel

DEFAULT_URL = "http://127.0.0.1:5000"
HISTORY_SHOWN = 10


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=os.environ.get("SYSTEM1_URL", DEFAULT_URL),
        help=f"the server (env SYSTEM1_URL, default {DEFAULT_URL})",
    )
    common.add_argument(
        "--email", default=os.environ.get("SYSTEM1_EMAIL"), help="env SYSTEM1_EMAIL"
    )
    common.add_argument(
        "--password",
        default=os.environ.get("SYSTEM1_PASSWORD"),
        help="env SYSTEM1_PASSWORD; asked for when missing",
    )
    common.add_argument(
        "--register",
        metavar="NAME",
        help="create the account first, with this name (logs in if it exists)",
    )
    common.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for each answer"
    )
    common.add_argument(
        "-m",
        "--message",
        action="append",
        default=[],
        help="a message to send (repeatable); then exit",
    )

    parser = argparse.ArgumentParser(
        prog="python -m client",
        description="A terminal client of System1: chats and tasks, streamed live.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    chat = commands.add_parser("chat", parents=[common], help="chat with the assistant")
    which = chat.add_mutually_exclusive_group()
    which.add_argument("--session", help="continue this session (session_id)")
    which.add_argument("--new", action="store_true", help="start a new chat without asking")

    task = commands.add_parser("task", parents=[common], help="run a task and edit its draft")
    which = task.add_mutually_exclusive_group()
    which.add_argument("--task", help="the task to start: its name or user_task_pk")
    which.add_argument("--execution", type=int, help="continue this user_task_execution_pk")
    task.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a value of the task's start form (repeatable); missing ones are asked for",
    )

    commands.add_parser("list", parents=[common], help="your chats, tasks and task runs")
    return parser


class Cli:
    def __init__(self, args: argparse.Namespace, console: Console):
        self.args = args
        self.console = console
        self.api = Api(args.url)
        self.live: LiveSession | None = None
        self.interactive = sys.stdin.isatty()
        self.draft: Draft | None = None
        self.shown_title: str | None = None

    # Log in

    def login(self) -> None:
        args = self.args
        email = args.email or (self.ask("Email") if self.interactive else None)
        if not email:
            raise ApiError("an email is needed: --email or SYSTEM1_EMAIL")
        password = args.password
        if not password and self.interactive:
            password = getpass.getpass("Password: ")
        if not password:
            raise ApiError("a password is needed: --password or SYSTEM1_PASSWORD")
        user: dict[str, Any] | None = None
        if args.register:
            try:
                user = self.api.register(email, password, args.register)
            except ApiError as exc:
                if exc.status != 409:
                    raise
        if user is None:
            user = self.api.login(email, password)
        self.console.print(f"[green]✓[/] logged in as [bold]{user.get('name') or email}[/]")

    def connect(self) -> LiveSession:
        assert self.api.token is not None
        self.live = LiveSession(self.api.base_url, self.api.token, self.console)
        self.live.connect()
        return self.live

    def close(self) -> None:
        if self.live is not None:
            self.live.close()

    # Helpers

    def ask(self, question: str, default: str | None = None) -> str:
        if default is None:
            return Prompt.ask(question, console=self.console)
        return Prompt.ask(question, console=self.console, default=default, show_default=False)

    def pick(self, title: str, rows: list[list[str]], columns: list[str], empty: str) -> int | None:
        """A numbered table; the chosen row's position, or None (Enter) for `empty`."""
        table = Table(title=title, title_justify="left")
        table.add_column("#", justify="right", style="bold")
        for column in columns:
            table.add_column(column)
        for number, row in enumerate(rows, start=1):
            table.add_row(str(number), *row)
        if rows:
            self.console.print(table)
        answer = self.ask(f"Pick a number, or Enter for {empty}", default="").strip()
        if not answer:
            return None
        if not answer.isdigit() or not 1 <= int(answer) <= len(rows):
            raise ApiError(f"no row {answer!r}")
        return int(answer) - 1

    def messages(self) -> Iterator[str]:
        """The messages to send: --message, else stdin lines, else a prompt."""
        if self.args.message:
            yield from self.args.message
            return
        if not self.interactive:
            for line in sys.stdin:
                if line.strip():
                    yield line.rstrip("\n")
            return
        hint = "/quit or Ctrl-D to leave"
        if self.args.command == "task":
            hint += ", /draft to show the draft, /edit to rewrite it"
        self.console.print(f"[dim]{hint}[/]")
        while True:
            try:
                text = self.console.input("[bold blue]you >[/] ")
            except (EOFError, KeyboardInterrupt):
                self.console.print()
                return
            if text.strip() in ("/quit", "/exit"):
                return
            if text.strip():
                yield text

    def show_history(self, session_id: str) -> None:
        assert self.live is not None
        stored = self.api.messages(session_id)
        for message in stored:
            body = message.get("message") or {}
            if body.get("produced_text_version_pk") is not None:
                self.live.mark_seen("draft", body["produced_text_version_pk"])
            self.live.mark_seen("message", message["message_pk"])
        for message in stored[-HISTORY_SHOWN:]:
            body = message.get("message") or {}
            style = {"user": "bold blue", "mojo": "bold cyan", "system": "dim"}[message["sender"]]
            who = {"user": "you", "mojo": "assistant", "system": "task"}[message["sender"]]
            text = body.get("text") or ("(error)" if message.get("in_error_state") else "")
            self.console.print(Text.assemble((f"{who} > ", style), text))
        if stored:
            self.console.rule(style="dim")

    def converse(self, session_id: str) -> int:
        """Send each message and stream its answer."""
        assert self.live is not None
        for text in self.messages():
            if text.strip() == "/draft":
                self.show_draft()
                continue
            if text.strip() == "/edit":
                self.edit_draft()
                continue
            if not self.interactive:
                self.console.print(Text.assemble(("you > ", "bold blue"), text))
            self.live.drain()
            self.api.send_message(session_id, text)
            if not self.turn():
                return 1
        return 0

    def stop_answer(self) -> None:
        """Ctrl-C during an answer: stop it (the stopped answer still arrives)."""
        assert self.live is not None and self.live.session_id is not None
        self.console.print("[dim]stopping the answer (Ctrl-C again to leave)[/]")
        try:
            self.api.stop_turn(self.live.session_id)
        except ApiError as exc:
            if exc.status != 409:  # 409: it ended on its own meanwhile
                raise

    def turn(self) -> bool:
        assert self.live is not None
        try:
            newest = self.draft.version_index if self.draft else None
            result = self.live.wait_turn(self.args.timeout, newest, self.stop_answer)
        except TurnError as exc:
            self.console.print(f"[red]✗ {exc}[/]")
            return False
        if result.draft is not None:
            self.draft = result.draft
        if self.live.title and self.live.title != self.shown_title:
            self.shown_title = self.live.title
            self.console.print(f"[dim]title: {self.live.title}[/]")
        return True

    def show_draft(self) -> None:
        if self.draft is None:
            self.console.print("[dim]no draft yet[/]")
        else:
            self.console.print(draft_panel(self.draft, ""))

    def edit_draft(self) -> None:
        """Replace the draft with typed text (ends with a line holding only '.')."""
        if self.draft is None or self.draft.produced_text_pk is None:
            self.console.print("[dim]no draft yet[/]")
            return
        self.console.print("[dim]Type the new text; a line with only '.' ends it.[/]")
        lines = []
        while True:
            try:
                line = self.console.input()
            except EOFError:
                break
            if line == ".":
                break
            lines.append(line)
        saved = self.api.save_draft(self.draft.produced_text_pk, "\n".join(lines), None)
        self.draft = Draft(
            produced_text_pk=saved["produced_text_pk"],
            version_pk=saved["produced_text_version_pk"],
            version_index=saved["produced_text_version_index"],
            title=self.draft.title,
            text="\n".join(lines),
            author="you",
        )
        self.console.print(draft_panel(self.draft, "saved ✓"))

    # Commands

    def chat(self) -> int:
        args = self.args
        session_id = args.session
        title = None
        if session_id is None and not args.new and self.interactive and not args.message:
            sessions = self.api.sessions()
            executions = {e["session_id"] for e in self.api.executions()}
            chats = [s for s in sessions if s["session_id"] not in executions]
            chosen = self.pick(
                "Your chats",
                [[s.get("title") or "Untitled", s.get("last_message_date") or ""] for s in chats],
                ["title", "last message"],
                "a new chat",
            )
            if chosen is not None:
                session_id, title = chats[chosen]["session_id"], chats[chosen].get("title")
        self.connect()
        assert self.live is not None
        if session_id is None:
            session_id = self.api.create_session()
            self.console.print(f"[dim]new chat {session_id}[/]")
        else:
            self.console.print(f"[bold]{title or 'chat'}[/] [dim]{session_id}[/]")
            self.show_history(session_id)
        self.live.join(session_id)
        return self.converse(session_id)

    def task(self) -> int:
        args = self.args
        if args.execution is not None:
            return self.resume_task(args.execution)
        tasks = self.api.user_tasks()
        task = self.find_task(tasks, args.task) if args.task else None
        if task is None:
            if not self.interactive:
                raise ApiError("--task is needed: " + ", ".join(t["task_name"] for t in tasks))
            chosen = self.pick(
                "Tasks",
                [[f"{t['task_icon']} {t['task_name']}", t["task_description"]] for t in tasks],
                ["task", "what it does"],
                "none (quit)",
            )
            if chosen is None:
                return 0
            task = tasks[chosen]
        given = dict(item.split("=", 1) for item in args.input if "=" in item)
        execution = self.api.create_execution(task["user_task_pk"])
        inputs = []
        for field in execution["json_input"]:
            name = field["input_name"]
            value = given.pop(name, None)
            if value is None:
                if not self.interactive:
                    raise ApiError(
                        f"--input {name}=... is needed ({field['description_for_user']})"
                    )
                value = self.ask(field["description_for_user"])
            inputs.append({"input_name": name, "value": value})
        if given:
            raise ApiError(f"unknown input {next(iter(given))!r} for {task['task_name']}")
        self.connect()
        assert self.live is not None
        session_id = execution["session_id"]
        self.live.join(session_id)
        self.console.print(
            f"[bold]{task['task_icon']} {task['task_name']}[/] "
            f"[dim]execution {execution['user_task_execution_pk']}[/]"
        )
        self.api.run_execution(execution["user_task_execution_pk"], inputs)
        if not self.turn():
            return 1
        return self.converse(session_id)

    def resume_task(self, user_task_execution_pk: int) -> int:
        execution = self.api.execution(user_task_execution_pk)
        self.connect()
        assert self.live is not None
        session_id = execution["session_id"]
        self.console.print(
            f"[bold]{execution['icon']} {execution.get('title') or execution['task_name']}[/] "
            f"[dim]execution {user_task_execution_pk}[/]"
        )
        self.show_history(session_id)
        if execution.get("produced_text_pk"):
            self.draft = Draft(
                produced_text_pk=execution["produced_text_pk"],
                version_pk=execution["produced_text_version_pk"],
                version_index=execution["produced_text_version_index"],
                title=execution.get("produced_text_title") or "",
                text=execution.get("produced_text_production") or "",
            )
            self.show_draft()
        self.live.join(session_id)
        return self.converse(session_id)

    @staticmethod
    def find_task(tasks: list[dict[str, Any]], wanted: str) -> dict[str, Any]:
        for task in tasks:
            if wanted.isdigit() and task["user_task_pk"] == int(wanted):
                return task
            if task["task_name"].casefold() == wanted.casefold():
                return task
        names = ", ".join(t["task_name"] for t in tasks)
        raise ApiError(f"no task {wanted!r}; the tasks are: {names}")

    def list_all(self) -> int:
        executions = self.api.executions()
        task_sessions = {e["session_id"] for e in executions}
        chats = Table(title="Chats", title_justify="left")
        for column in ("session_id", "title", "last message"):
            chats.add_column(column)
        for s in self.api.sessions():
            if s["session_id"] not in task_sessions:
                chats.add_row(
                    s["session_id"], s.get("title") or "", s.get("last_message_date") or ""
                )
        runs = Table(title="Task runs", title_justify="left")
        for column in ("execution", "task", "title", "draft"):
            runs.add_column(column)
        for e in executions:
            version = e.get("produced_text_version_index")
            runs.add_row(
                str(e["user_task_execution_pk"]),
                f"{e['icon']} {e['task_name']}",
                e.get("title") or "",
                f"v{version}" if version else "",
            )
        tasks = Table(title="Tasks", title_justify="left")
        for column in ("user_task_pk", "task", "what it does"):
            tasks.add_column(column)
        for t in self.api.user_tasks():
            tasks.add_row(
                str(t["user_task_pk"]), f"{t['task_icon']} {t['task_name']}", t["task_description"]
            )
        self.console.print(chats, runs, tasks)
        return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(highlight=False)
    cli = Cli(args, console)
    try:
        cli.login()
        return {"chat": cli.chat, "task": cli.task, "list": cli.list_all}[args.command]()
    except ApiError as exc:
        console.print(f"[red]✗ {exc}[/]")
        return 1
    except KeyboardInterrupt:
        console.print()
        return 130
    except Exception as exc:  # a socket refused, a server gone: one line, no traceback
        if os.environ.get("SYSTEM1_CLIENT_DEBUG"):
            raise
        console.print(f"[red]✗ {exc.__class__.__name__}: {exc}[/]")
        return 1
    finally:
        cli.close()
