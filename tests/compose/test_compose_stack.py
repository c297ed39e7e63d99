"""The Dockerfile and docker-compose.yml, run for real (`make compose-test`).

The tests run in file order against one compose project (`system1ct`), each building on
the previous one's state: the image, `up`, scale, faults, then `down -v`.

- Images: no registry can be reached here, so Debian-built stand-ins replace the official
  Python, PostgreSQL and Redis images (devtools/compose/driver.py), and the override
  devtools/compose/docker-compose.test.yml changes only images, ports and networking
  (host network, everything on 127.0.0.1).
- The LLM is the project's scripted OpenAI-compatible server, run on the host on a free
  loopback port; the containers reach it through OPENAI_BASE_URL.
- Where no Docker engine can run (tools missing and not installable, not root, dockerd
  refusing to start) every test skips and says why.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests

from devtools.compose import driver
from tests.support.clients import Api, SocketClient, User

ROOT = Path(__file__).resolve().parents[2]
# Cold (debootstrap, stand-ins, pip install in the image) takes minutes; later tests wait
# for turn recovery (a turn's 20 s lease) and restarts.
pytestmark = pytest.mark.timeout(1500)

POSTGRES_PASSWORD = "compose-test-" + secrets.token_hex(8)
FLOWER_AUTH = ("operator", "flower-" + secrets.token_hex(8))
# The largest the System1 image may be, stand-in base included (Debian minbase and Python:
# about 150 MB; the official python:3.11-slim is about 130 MB).
MAX_IMAGE_MB = 700
SLOW = "[llm:words=60] [llm:token_interval_ms=100]"  # about 6 s of streaming


# --------------------------------------------------------------------------------------
# The stack
# --------------------------------------------------------------------------------------


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(every)


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class ComposeStack:
    def __init__(self, env_file: Path, log_dir: Path):
        merged = driver.render(env_file, log_dir / "docker-compose.merged.yml")
        self.argv = driver.compose_argv(env_file, [merged])
        self.log_dir = log_dir

    def compose(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return driver.run([*self.argv, *args], timeout=timeout)

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return driver.run(["docker", *args], check=check, timeout=120)

    def containers(self, service: str | None = None, running: bool = False) -> list[str]:
        argv = ["ps", "-q", "--filter", f"label=com.docker.compose.project={driver.PROJECT}"]
        if service:
            argv += ["--filter", f"label=com.docker.compose.service={service}"]
        if not running:
            argv.insert(1, "-a")
        return self.docker(*argv).stdout.split()

    def inspect(self, container: str) -> dict[str, Any]:
        return json.loads(self.docker("inspect", container).stdout)[0]

    def service_of(self, container: str) -> str:
        return self.inspect(container)["Config"]["Labels"]["com.docker.compose.service"]

    def unhealthy(self) -> list[str]:
        """Containers not (yet) running and healthy, the one-shot migrate aside."""
        waiting = []
        for container in self.containers():
            info = self.inspect(container)
            name = info["Name"].lstrip("/")
            state = info["State"]
            if self.service_of(container) == "migrate":
                continue
            if not state["Running"]:
                if not (state["Status"] == "exited" and state["ExitCode"] == 0):
                    waiting.append(f"{name}: {state['Status']}")
                continue
            health = state.get("Health", {}).get("Status")
            if health not in (None, "healthy"):
                waiting.append(f"{name}: {health}")
        return waiting

    def wait_healthy(self, timeout: float = 180) -> None:
        try:
            wait_until(lambda: not self.unhealthy(), timeout, "every service healthy", 2)
        except TimeoutError:
            raise AssertionError(f"not healthy: {self.unhealthy()}") from None

    def web_urls(self) -> dict[str, str]:
        """Running web node container -> its URL (the port it claimed)."""
        urls = {}
        for container in self.containers("web", running=True):
            port = self.docker("exec", container, "cat", "/tmp/web-port").stdout.strip()
            urls[container] = f"http://127.0.0.1:{port}"
        return urls

    def logs(self, container: str) -> str:
        result = self.docker("logs", container, check=False)
        return result.stdout + result.stderr

    def save_logs(self) -> None:
        """Each container's log into the run's folder (if the engine still answers)."""
        try:
            for container in self.containers():
                name = self.inspect(container)["Name"].lstrip("/")
                (self.log_dir / f"{name}.log").write_text(self.logs(container))
        except RuntimeError as error:
            driver.log(f"container logs not saved: {error}")

    def db(self) -> Any:
        connection = psycopg2.connect(
            host="127.0.0.1",
            port=driver.POSTGRES_PORT,
            user="system1",
            password=POSTGRES_PASSWORD,
            dbname="system1",
            connect_timeout=5,
        )
        connection.autocommit = True
        return connection

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        connection = self.db()
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()
        finally:
            connection.close()


@pytest.fixture(scope="module")
def engine() -> Iterator[driver.Engine]:
    docker = driver.Engine()
    try:
        docker.start()
    except driver.Unavailable as reason:
        pytest.skip(f"compose test skipped: {reason}")
    yield docker
    docker.stop()


@pytest.fixture(scope="module")
def images(engine: driver.Engine) -> dict[str, str]:
    started = time.monotonic()
    standins = driver.build_standins()
    driver.build_app(standins["python"])
    driver.log(f"images ready in {time.monotonic() - started:.0f} s")
    return standins


@pytest.fixture(scope="module")
def llm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The scripted LLM on the host, on a free loopback port."""
    log = tmp_path_factory.mktemp("llm") / "scripted-llm.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.scripted_llm", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=open(log, "wb"),  # noqa: SIM115  (the child owns it)
        text=True,
    )
    line = process.stdout.readline() if process.stdout else ""
    match = re.search(r"(http://\S+/v1)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"scripted LLM did not start: {line!r} {log.read_text()}")
    yield match.group(1)
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def stack(
    images: dict[str, str], llm_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComposeStack]:
    taken = [
        port
        for port in (driver.POSTGRES_PORT, driver.REDIS_PORT, driver.FLOWER_PORT, *driver.WEB_PORTS)
        if not port_is_free(port)
    ]
    driver.remove_leftovers()
    assert taken == [], f"the compose test's ports are taken on 127.0.0.1: {taken}"
    run_dir = tmp_path_factory.mktemp("compose")
    env_file = run_dir / "compose.env"
    env_file.write_text(
        "\n".join(
            [
                f"POSTGRES_PASSWORD={POSTGRES_PASSWORD}",
                f"JWT_SECRET={secrets.token_hex(32)}",
                f"FLOWER_BASIC_AUTH={':'.join(FLOWER_AUTH)}",
                "OPENAI_API_KEY=scripted",
                f"OPENAI_BASE_URL={llm_url}",
                "LLM_MODEL=scripted",
                "TURN_CONCURRENCY=20",
                "DELIVERY_CONCURRENCY=4",
                "",
            ]
        )
    )
    compose = ComposeStack(env_file, run_dir)
    try:
        yield compose
    finally:
        # Whatever happened: nothing of the test stays behind. (After the last test the
        # engine it started is stopped, and that test checked that nothing was left.)
        if driver.Engine.answers():
            try:
                compose.save_logs()
                driver.log(f"container logs in {run_dir}")
            finally:
                driver.run([*compose.argv, "down", "-v", "--remove-orphans"], check=False)
                driver.remove_leftovers()


@pytest.fixture
def sockets() -> Iterator[list[SocketClient]]:
    opened: list[SocketClient] = []
    yield opened
    for client in opened:
        client.close()


def open_socket(url: str, user: User, session_id: str, sockets: list[SocketClient]):
    client = SocketClient(url, user.token).connect()
    sockets.append(client)
    assert client.start_session(session_id)["joined"]
    return client


def replies_to(stack: ComposeStack, user_message_pk: int) -> list[tuple[Any, ...]]:
    return stack.query(
        "SELECT message_pk, acknowledged_at FROM md_message WHERE in_reply_to_pk = %s",
        user_message_pk,
    )


def turn(api: Api, user: User, session_id: str, client: SocketClient, text: str, timeout=60):
    """Send a user message; the one mojo_message that answers it (acknowledged)."""
    sent = api.send_message(user, session_id, text)
    assert sent.status_code == 200, sent.text
    prefix = "Echo: " + text.split(" [llm:")[0]
    answer = client.wait_for(
        "mojo_message", lambda m: m["text"].startswith(prefix), timeout=timeout
    )
    return sent.json(), answer


def metric(url: str, name: str) -> float:
    text = requests.get(url + "/metrics", timeout=10).text
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


# --------------------------------------------------------------------------------------
# The image
# --------------------------------------------------------------------------------------

INSTALLED = r"""
import importlib.metadata as md, json, sys
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as name
dists = {name(d.metadata["Name"]): d for d in md.distributions()}
roots = [Requirement(l) for l in open("/app/requirements.txt").read().split("\n")
         if l.strip() and not l.startswith("#")]
needed, todo = set(), [(name(r.name), frozenset(r.extras)) for r in roots]
while todo:
    key, extras = todo.pop()
    if (key, extras) in needed or key not in dists:
        continue
    needed.add((key, extras))
    for line in dists[key].requires or []:
        req = Requirement(line)
        envs = [{"extra": e} for e in extras] + [{"extra": ""}]
        if req.marker is None or any(req.marker.evaluate(env) for env in envs):
            todo.append((name(req.name), frozenset(req.extras)))
json.dump({"installed": sorted(dists), "needed": sorted({k for k, _ in needed})}, sys.stdout)
"""


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[\[<>=!~; ]", line)[0].lower().replace("_", "-"))
    return names


def test_the_image_builds_on_the_python_base_without_test_or_development_packages(images, stack):
    info = json.loads(driver.run(["docker", "image", "inspect", driver.APP_IMAGE]).stdout)[0]
    size_mb = info["Size"] / 1e6
    base_mb = (
        json.loads(driver.run(["docker", "image", "inspect", images["python"]]).stdout)[0]["Size"]
        / 1e6
    )
    driver.log(f"image {driver.APP_IMAGE}: {size_mb:.0f} MB (the Python base: {base_mb:.0f} MB)")
    assert size_mb < MAX_IMAGE_MB

    config = info["Config"]
    assert config["User"] == "system1"
    assert "/health" in " ".join(config["Healthcheck"]["Test"])
    assert config["Cmd"] == ["gunicorn", "--config", "web/gunicorn_conf.py", "web.wsgi:app"]

    run = ["docker", "run", "--rm", "--network=none", "--entrypoint", "python", driver.APP_IMAGE]
    found = json.loads(driver.run([*run, "-c", INSTALLED]).stdout)
    # Everything installed is what requirements.txt needs (pip and its venv seeds aside).
    extra = set(found["installed"]) - set(found["needed"]) - {"pip", "setuptools", "wheel"}
    assert extra == set()
    dev_only = requirement_names(ROOT / "requirements-dev.txt") - requirement_names(
        ROOT / "requirements.txt"
    )
    assert dev_only & set(found["installed"]) - set(found["needed"]) == set()
    listing = driver.run([*run, "-c", "import os; print(sorted(os.listdir('/app')))"]).stdout
    for absent in ("tests", "bench", "client", "docs", ".git", ".venv", ".env"):
        assert f"'{absent}'" not in listing
    shipped = driver.run([*run, "-c", "import os; print(sorted(os.listdir('/app/devtools')))"])
    assert set(eval(shipped.stdout)) <= {"__init__.py", "scripted_llm.py", "__pycache__"}


# --------------------------------------------------------------------------------------
# up
# --------------------------------------------------------------------------------------


def test_up_runs_every_service_healthy_and_serves_chat_and_task_turns(stack, sockets):
    started = time.monotonic()
    stack.compose("up", "-d", "--no-build")
    stack.wait_healthy()
    driver.log(f"up and healthy in {time.monotonic() - started:.0f} s")

    [migrate] = stack.containers("migrate")
    assert stack.inspect(migrate)["State"]["ExitCode"] == 0
    assert "database up to date" in stack.logs(migrate)
    [url] = stack.web_urls().values()
    health = requests.get(url + "/health", timeout=10)
    assert health.status_code == 200, health.text
    finished_before = metric(url, "system1_turns_finished_total")

    api = Api(url)
    user = api.register("Demo")
    session_id = api.create_session(user)
    client = open_socket(url, user, session_id, sockets)
    sent, answer = turn(api, user, session_id, client, "Hello from compose")
    assert client.events("mojo_token")
    assert answer["message_pk"] != sent["message_pk"]

    # A task turn: the assistant asks, the user answers, a draft streams and arrives.
    tasks = api.call("GET", "/user_task", user.token).json()["user_tasks"]
    email = next(t["user_task_pk"] for t in tasks if t["task_name"] == "Write an email")
    execution = api.call(
        "PUT", "/user_task_execution", user.token, json={"user_task_pk": email}
    ).json()
    task_client = open_socket(url, user, execution["session_id"], sockets)
    inputs = [
        {"input_name": "recipient", "value": "Sarah, my manager"},
        {"input_name": "purpose", "value": "ask for a day off on Friday"},
    ]
    ran = api.call(
        "POST",
        "/user_task_execution_run",
        user.token,
        json={"user_task_execution_pk": execution["user_task_execution_pk"], "inputs": inputs},
    )
    assert ran.status_code == 200, ran.text
    task_client.wait_for("mojo_message", timeout=60)
    api.send_message(user, execution["session_id"], "Friendly tone please")
    draft = task_client.wait_for("draft_message", timeout=60)
    assert task_client.events("draft_token")
    assert draft["produced_text_title"] == "Write an email"
    assert draft["produced_text"]

    # Both answers acknowledged by the clients, as stored.
    def acknowledged() -> bool:
        rows = stack.query(
            "SELECT count(*) FROM md_message WHERE message_pk IN (%s, %s) "
            "AND acknowledged_at IS NOT NULL",
            answer["message_pk"],
            draft["message_pk"],
        )
        return rows[0][0] == 2

    wait_until(acknowledged, 15, "both answers acknowledged")
    assert len(replies_to(stack, sent["message_pk"])) == 1

    # Flower with its basic auth, and only with it.
    flower = f"http://127.0.0.1:{driver.FLOWER_PORT}"
    assert requests.get(flower + "/api/workers", timeout=10).status_code == 401
    workers = requests.get(flower + "/api/workers", auth=FLOWER_AUTH, timeout=10)
    assert workers.status_code == 200, workers.text

    # /metrics counts the turns (the chat turn, the task's question and its draft).
    wait_until(
        lambda: metric(url, "system1_turns_finished_total") >= finished_before + 3,
        15,
        "/metrics to count the turns",
    )


# --------------------------------------------------------------------------------------
# scale
# --------------------------------------------------------------------------------------


def scale_up(stack: ComposeStack) -> None:
    stack.compose("up", "-d", "--no-build", "--scale", "web=2", "--scale", "worker-turns=2")
    stack.wait_healthy()


def test_scaled_to_two_web_nodes_and_two_turn_workers_turns_from_both_nodes_answer_once(
    stack, sockets
):
    scale_up(stack)
    urls = list(stack.web_urls().values())
    assert len(urls) == 2 and len(set(urls)) == 2
    assert len(stack.containers("worker-turns", running=True)) == 2

    conversations = []
    for index, url in enumerate(urls):
        api = Api(url)
        user = api.register(f"Node{index}")
        session_id = api.create_session(user)
        conversations.append((api, user, session_id, open_socket(url, user, session_id, sockets)))
    sent = []
    for round_ in range(3):
        for index, (api, user, session_id, _client) in enumerate(conversations):
            text = f"Node {index} turn {round_} [llm:words=30] [llm:token_interval_ms=50]"
            response = api.send_message(user, session_id, text)
            assert response.status_code == 200, response.text
            sent.append((index, text, response.json()["message_pk"]))
    # Turns of one session run side by side on both workers: answers may come in any order.
    for index, text, message_pk in sent:
        client = conversations[index][3]
        prefix = "Echo: " + text.split(" [llm:")[0]

        def answered(client=client, prefix=prefix) -> bool:
            return any(m["text"].startswith(prefix) for m in client.events("mojo_message"))

        wait_until(answered, 60, f"the answer to {text!r}")
        wait_until(lambda pk=message_pk: replies_to(stack, pk), 10, "the stored reply")
        assert len(replies_to(stack, message_pk)) == 1
    time.sleep(3)
    for index, (_api, _user, _session_id, client) in enumerate(conversations):
        # Exactly one answer per turn reached each client (no duplicates).
        texts = [m["text"] for m in client.events("mojo_message")]
        assert len(texts) == len(set(texts)) == 3, (index, texts)
    # Both turn workers took some of these turns.
    pks = {message_pk for _index, _text, message_pk in sent}
    took = {
        container: received_turns(stack.logs(container)) & pks
        for container in stack.containers("worker-turns", running=True)
    }
    assert all(took.values()), took
    assert set().union(*took.values()) == pks


def received_turns(log: str) -> set[int]:
    """The user messages whose turn tasks a turn worker's log says it received."""
    pks = set()
    for line in log.splitlines():
        if '"Task system1.assistant_turn[' in line and '] received"' in line:
            pks.add(json.loads(json.loads(line)["data"]["args"])[0])
    return pks


# --------------------------------------------------------------------------------------
# faults
# --------------------------------------------------------------------------------------


def conversation(url: str, sockets: list[SocketClient], name: str):
    api = Api(url)
    user = api.register(name)
    session_id = api.create_session(user)
    return api, user, session_id, open_socket(url, user, session_id, sockets)


def stored_messages(stack: ComposeStack) -> set[int]:
    return {row[0] for row in stack.query("SELECT message_pk FROM md_message")}


def test_a_turn_worker_killed_mid_stream_comes_back_and_the_turn_is_answered_once(stack, sockets):
    url = next(iter(stack.web_urls().values()))
    api, user, session_id, client = conversation(url, sockets, "Killed")
    text = f"Killed mid stream {SLOW}"

    sent = api.send_message(user, session_id, text).json()
    client.wait_for("mojo_token", timeout=30)
    [(task_id,)] = stack.query(
        "SELECT turn_task_id FROM md_message WHERE message_pk = %s", sent["message_pk"]
    )
    [holder] = [c for c in stack.containers("worker-turns") if task_id in stack.logs(c)]
    started_at = stack.inspect(holder)["State"]["StartedAt"]
    # SIGKILL from outside, as a crash or the OOM killer: `docker kill` itself counts as
    # an operator's stop, which a restart policy leaves stopped (checked below).
    pid = stack.inspect(holder)["State"]["Pid"]
    driver.run(["kill", "-KILL", str(pid)])

    def restarted() -> bool:
        state = stack.inspect(holder)["State"]
        return state["Running"] and state["StartedAt"] != started_at

    wait_until(restarted, 30, "the restart policy to bring the turn worker back")
    answer = client.wait_for(
        "mojo_message", lambda m: m["text"].startswith("Echo: Killed mid stream"), 120
    )
    with pytest.raises(TimeoutError):
        client.wait_for("mojo_message", timeout=8)
    assert [row[0] for row in replies_to(stack, sent["message_pk"])] == [answer["message_pk"]]

    # `docker kill` is an operator's stop: unless-stopped keeps the container down until
    # `docker compose up` starts it again.
    other = next(c for c in stack.containers("worker-turns", running=True) if c != holder)
    stack.docker("kill", other)
    time.sleep(5)
    assert not stack.inspect(other)["State"]["Running"]
    scale_up(stack)
    assert len(stack.containers("worker-turns", running=True)) == 2


def restart_during_turns(stack: ComposeStack, service: str, sockets, name: str) -> None:
    url = next(iter(stack.web_urls().values()))
    api, user, session_id, client = conversation(url, sockets, name)
    _sent, _answer = turn(api, user, session_id, client, f"{name} before the restart")
    before = stored_messages(stack)

    sent = api.send_message(user, session_id, f"{name} during the restart {SLOW}")
    assert sent.status_code == 200, sent.text
    client.wait_for("mojo_token", timeout=30)
    [container] = stack.containers(service)
    stack.docker("restart", container)

    answer = client.wait_for(
        "mojo_message", lambda m: m["text"].startswith(f"Echo: {name} during"), 120
    )
    wait_until(
        lambda: requests.get(url + "/health", timeout=5).status_code == 200,
        60,
        "/health back to 200",
    )

    def send_after() -> bool:
        response = api.send_message(
            user, session_id, f"{name} after the restart", message_id=f"after-{name}"
        )
        return response.status_code == 200

    wait_until(send_after, 60, "PUT /user_message to succeed again", every=2)
    client.wait_for("mojo_message", lambda m: m["text"].startswith(f"Echo: {name} after"), 60)
    after = stored_messages(stack)
    assert before <= after, f"lost {sorted(before - after)}"
    assert [row[0] for row in replies_to(stack, sent.json()["message_pk"])] == [
        answer["message_pk"]
    ]
    stack.wait_healthy()


def test_a_postgres_restart_during_a_turn_loses_no_stored_message(stack, sockets):
    restart_during_turns(stack, "postgres", sockets, "Postgres")


def test_a_redis_restart_during_a_turn_loses_no_stored_message(stack, sockets):
    restart_during_turns(stack, "redis", sockets, "Redis")


def test_a_stopped_web_node_closes_its_sockets_and_clients_reconnect_to_the_other(stack, sockets):
    urls = stack.web_urls()
    assert len(urls) == 2
    (leaving, leaving_url), (_, staying_url) = urls.items()
    api, user, session_id, client = conversation(leaving_url, sockets, "Moving")
    turn(api, user, session_id, client, "Before the node stops")
    other = conversation(staying_url, sockets, "Staying")

    stopped = threading.Event()
    started = time.monotonic()
    threading.Thread(
        target=lambda: (stack.docker("stop", leaving), stopped.set()), daemon=True
    ).start()
    wait_until(lambda: not client.sio.connected, 10, "the stopping node to close the socket")
    closed_after = time.monotonic() - started
    driver.log(f"web node closed its sockets {closed_after:.1f} s after docker stop")
    assert closed_after < 5  # not held until gunicorn's 10 s graceful timeout

    # The client reconnects to the other node, rejoins its session and goes on.
    moved = open_socket(staying_url, user, session_id, sockets)
    turn(Api(staying_url), user, session_id, moved, "After the node stopped")
    turn(*other, "Unaffected by the other node")
    assert stopped.wait(30)
    state = stack.inspect(leaving)["State"]
    assert (state["Running"], state["ExitCode"]) == (False, 0)  # a graceful exit


# --------------------------------------------------------------------------------------
# down
# --------------------------------------------------------------------------------------


def test_down_removes_everything_and_stops_the_engine_it_started(stack, engine):
    stack.save_logs()
    driver.log(f"container logs in {stack.log_dir}")
    stack.compose("down", "-v", "--remove-orphans")

    assert driver.leftovers() == {"containers": [], "volumes": [], "networks": []}
    started_here = engine.started is not None
    engine.stop()
    if started_here:
        assert not driver.Engine.answers()
