"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

- The compose file validates against the Compose Specification's JSON schema, as
  vendored by check-jsonschema (`check-jsonschema --builtin-schema vendor.compose-spec`;
  the schema's licence is in check_jsonschema/builtin_schemas/vendor/licenses/).
- Every command a service of our image runs names something that exists here: the
  program is installed by requirements.txt, and the config file, module, WSGI app,
  Celery app and queues it names exist in the project.
- Every variable the compose file reads is documented in .env.example, and every
  setting it passes to the app is one the app reads.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import shlex
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

import celeryconfig
from common.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
VENV_BIN = ROOT / ".venv" / "bin"
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}; `$$` is a literal $.
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
CELERY_POOLS = {"prefork", "threads", "gevent", "eventlet", "solo"}
# Variables the compose file passes to Flower, not to the app's settings.
NOT_APP_SETTINGS = {"FLOWER_BASIC_AUTH"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def interpolate(value: str) -> str:
    """A compose value with each variable replaced by its default, as with no .env."""
    return INTERPOLATION.sub(lambda m: m.group(3) if m.group(2) in (":-", "-") else "x", value)


def command_of(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    return [interpolate(str(arg)) for arg in argv]


def module_file(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin)


def defines(path: Path, name: str) -> bool:
    """Whether a module assigns `name` at top level (without importing it)."""
    for node in ast.parse(path.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            return True
    return False


def option(argv: list[str], *names: str) -> str | None:
    """The value of `-x value`, `--xx value` or `--xx=value`."""
    for index, arg in enumerate(argv):
        for name in names:
            if arg == name and index + 1 < len(argv):
                return argv[index + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def problems_with_gunicorn(argv: list[str]) -> list[str]:
    found = []
    config = option(argv, "--config", "-c")
    if config is None or not (ROOT / config).is_file():
        found.append(f"gunicorn config {config!r} is not a file of the project")
    app = [arg for arg in argv[1:] if ":" in arg and not arg.startswith("-")]
    if len(app) != 1:
        return [*found, f"no single MODULE:APP in {argv}"]
    module, attribute = app[0].split(":", 1)
    path = module_file(module)
    if path is None or not defines(path, attribute):
        found.append(f"{app[0]}: no module {module} defining {attribute}")
    return found


def problems_with_celery(argv: list[str]) -> list[str]:
    app = option(argv, "-A", "--app")
    path = module_file(app or "")
    if path is None or not (defines(path, "app") or defines(path, "celery")):
        return [f"celery app {app!r} is no module of the project with an `app`"]
    subcommand = next((arg for arg in argv[3:] if not arg.startswith("-")), None)
    if subcommand not in ("worker", "beat", "flower"):
        return [f"celery subcommand {subcommand!r} is not worker, beat or flower"]
    if subcommand != "worker":
        return []
    found = []
    configured = {queue.name for queue in celeryconfig.task_queues}
    queues = set((option(argv, "-Q", "--queues") or "").split(","))
    if not queues <= configured:
        found.append(f"queues {sorted(queues - configured)} are not in celeryconfig")
    if option(argv, "-P", "--pool") not in CELERY_POOLS:
        found.append(f"unknown pool in {argv}")
    concurrency = option(argv, "-c", "--concurrency")
    if concurrency is not None and not concurrency.isdigit():
        found.append(f"concurrency {concurrency!r} is not a number")
    return found


def problems_with_flask(argv: list[str]) -> list[str]:
    app = option(argv, "--app")
    if app is None or module_file(app) is None:
        return [f"flask app {app!r} is no module of the project"]
    if argv[-2:] == ["db", "upgrade"] and not (ROOT / "common/migrations/env.py").is_file():
        return ["no migrations for `flask db upgrade`"]
    return []


def problems_with_python(argv: list[str]) -> list[str]:
    module = option(argv, "-m")
    if module is not None and module_file(module) is None:
        return [f"python -m {module}: no such module"]
    code = option(argv, "-c")
    if code is not None:
        compile(code, "<healthcheck>", "exec")
    return []


CHECKS = {
    "gunicorn": problems_with_gunicorn,
    "celery": problems_with_celery,
    "flask": problems_with_flask,
    "python": problems_with_python,
}


def problems_with(argv: list[str]) -> list[str]:
    program = argv[0]
    if program not in CHECKS:
        return [f"{program}: not a program this project runs"]
    if program != "python" and not (VENV_BIN / program).exists():
        return [f"{program} is not installed by the requirements"]
    return CHECKS[program](argv)


def our_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run this project's image (built from the Dockerfile)."""
    return {name: s for name, s in compose["services"].items() if "build" in s}


def test_compose_file_matches_the_compose_specification(compose):
    schema = json.loads(
        files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    )

    jsonschema.validators.validator_for(schema)(schema).validate(compose)


def test_every_command_of_our_services_names_something_in_the_project(compose):
    problems = {}
    for name, service in our_services(compose).items():
        argv = command_of(service)
        found = problems_with(argv)
        healthcheck = service.get("healthcheck", {}).get("test")
        if healthcheck and healthcheck[0] == "CMD":
            found += problems_with([interpolate(arg) for arg in healthcheck[1:]])
        if found:
            problems[name] = found

    assert problems == {}


def test_the_image_is_built_from_a_dockerfile_whose_default_command_is_the_web_node(compose):
    dockerfile = ROOT / "Dockerfile"
    text = dockerfile.read_text()
    assert {s["build"] for s in our_services(compose).values()} == {"."}
    for source in re.findall(r"^COPY (?:--\S+ )*(\S+) ", text, re.MULTILINE):
        assert (ROOT / source).exists(), source
    [cmd] = re.findall(r"^CMD (\[.*\])$", text, re.MULTILINE)
    assert json.loads(cmd) == command_of(compose["services"]["web"])
    assert problems_with(json.loads(cmd)) == []


def test_compose_runs_every_role_the_deployment_needs(compose):
    services = compose["services"]
    queues = {
        name: option(command_of(s), "-Q")
        for name, s in our_services(compose).items()
        if command_of(s)[:4] == ["celery", "-A", "worker", "worker"]
    }
    assert sorted(queues.values()) == ["delivery", "todos", "turns"]
    beats = [n for n, s in our_services(compose).items() if command_of(s)[3:4] == ["beat"]]
    assert beats == ["beat"]
    assert services["migrate"]["restart"] == "no"
    for name in ("web", *queues, "beat"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    assert "/health" in " ".join(services["web"]["healthcheck"]["test"])
    assert services["web"]["environment"]["HOST"] == "0.0.0.0"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert any("/var/lib/postgresql/data" in v for v in services["postgres"]["volumes"])
    assert "FLOWER_BASIC_AUTH" in services["flower"]["environment"]


def test_every_variable_compose_reads_is_in_env_example():
    used = set(INTERPOLATION.findall(COMPOSE_FILE.read_text()))
    example = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", example, re.MULTILINE))

    assert {name for name, _, _ in used} <= documented


def test_every_setting_compose_passes_to_the_app_is_one_it_reads(compose):
    settings = {name.upper() for name in Settings.model_fields}
    for name, service in our_services(compose).items():
        passed = set(service.get("environment", {})) - NOT_APP_SETTINGS
        assert passed <= settings, (name, passed - settings)
