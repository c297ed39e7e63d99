"""What the compose test (tests/compose/test_compose_stack.py) needs around Docker: the
tools, a Docker engine, stand-in base images built without a registry, the System1 image,
and `docker-compose` with the test's override.

Where images come from: no image registry can be reached from the machines this runs on,
so `python:3.11-slim`, `postgres:16-alpine` and `redis:7-alpine` cannot be pulled. Debian's
package mirror can be: `debootstrap --variant=minbase bookworm` makes a root file system
that `docker import` turns into a base image, and small Dockerfiles (standins/) add Python,
PostgreSQL or Redis from Debian's packages with the contract docker-compose.yml relies on.
The root file system is cached as a tarball under CACHE_DIR (outside the clone, so a fresh
clone reuses it); an image already in the engine is reused when its content label matches.

`python -m devtools.compose.driver tools` installs the tools with apt-get (what
`make compose-test` runs first); `... down` removes whatever a broken run left behind.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
OVERRIDE = HERE / "docker-compose.test.yml"
STANDINS_DIR = HERE / "standins"
CACHE_DIR = Path(
    os.environ.get("SYSTEM1_COMPOSE_CACHE", Path.home() / ".cache" / "system1" / "compose")
)
PROJECT = "system1ct"

SUITE = "bookworm"  # its python3 is 3.11, as the official image's
BASE_IMAGE = "system1-standin/debian:bookworm"
# Stand-in name -> tag; named after what they are, not after the official images.
STANDINS = {
    "python": "system1-standin/python:3.11-bookworm",
    "postgres": "system1-standin/postgres:15-bookworm",
    "redis": "system1-standin/redis:7-bookworm",
}
APP_IMAGE = "system1ct/system1:test"
CONTENT_LABEL = "system1.standin.content"

# The ports of the override (docker-compose.test.yml), all on 127.0.0.1.
POSTGRES_PORT = 21432
REDIS_PORT = 21379
FLOWER_PORT = 21555
WEB_PORTS = range(21500, 21510)
# The package index the image build reads (during the build only).
INDEX_PORT = 21590

# Program -> the Debian package that installs it.
TOOLS = {
    "dockerd": "docker.io",
    "docker": "docker.io",
    "docker-compose": "docker-compose",
    "debootstrap": "debootstrap",
}
DOCKERD_FLAGS = ["--bridge=none", "--iptables=false", "--ip6tables=false"]


class Unavailable(Exception):
    """Why the compose test cannot run on this machine (the test skips with it)."""


def log(message: str) -> None:
    print(f"[compose-test] {message}", file=sys.stderr, flush=True)


def run(argv: list[str], *, timeout: float = 600, check: bool = True, **kwargs):
    """A command, its output captured; a failure raises with the command's output."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout[-3000:]}"
            f"\n{result.stderr[-3000:]}"
        )
    return result


# --------------------------------------------------------------------------------------
# Tools and the engine
# --------------------------------------------------------------------------------------


def missing_tools() -> list[str]:
    return [program for program in TOOLS if shutil.which(program) is None]


def install_tools() -> str:
    """Install the missing tools with apt-get where root may; never raises."""
    missing = missing_tools()
    if not missing:
        return "compose test: docker, dockerd, docker-compose and debootstrap are installed"
    packages = sorted({TOOLS[program] for program in missing})
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"compose test: {missing} missing and no root apt-get to install {packages}"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = [
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
    ]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            return f"compose test: `{' '.join(step)}` failed: {result.stderr.strip()[-500:]}"
    return f"compose test: installed {packages}"


class Engine:
    """The Docker engine the test talks to: one already running, else a dockerd started
    here (no bridge, no iptables: containers use the host's network) and stopped by
    `stop()`."""

    def __init__(self) -> None:
        self.started: subprocess.Popen[bytes] | None = None
        self.pidfile = CACHE_DIR / "dockerd.pid"
        self.log_path = CACHE_DIR / "dockerd.log"

    @staticmethod
    def answers() -> bool:
        try:
            return run(["docker", "info"], timeout=20, check=False).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def start(self) -> Engine:
        missing = missing_tools()
        if missing:
            raise Unavailable(
                f"{', '.join(missing)} not installed (`make compose-test` installs Debian's "
                f"{', '.join(sorted({TOOLS[m] for m in missing}))} where root and apt-get exist)"
            )
        if self.answers():
            log("using the Docker engine already running")
            return self
        if os.geteuid() != 0:
            raise Unavailable("no Docker engine running, and starting dockerd needs root")
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        log(f"starting dockerd {' '.join(DOCKERD_FLAGS)} (log: {self.log_path})")
        with open(self.log_path, "ab") as out:
            self.started = subprocess.Popen(
                ["dockerd", *DOCKERD_FLAGS, f"--pidfile={self.pidfile}"],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.started.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-1500:]
                self.started = None
                raise Unavailable(f"dockerd could not start here:\n{tail}")
            if self.answers():
                return self
            time.sleep(0.5)
        self.stop()
        raise Unavailable("dockerd did not answer within 60 s")

    def stop(self) -> None:
        """Stop dockerd if it was started here (an engine found running is left alone)."""
        if self.started is None:
            return
        log("stopping the dockerd this test started")
        self.started.send_signal(signal.SIGTERM)
        try:
            self.started.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.started.kill()
            self.started.wait()
        self.started = None


# --------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (deb822 .sources or sources.list)."""
    if os.environ.get("SYSTEM1_DEBIAN_MIRROR"):
        return os.environ["SYSTEM1_DEBIAN_MIRROR"]
    candidates: list[str] = []
    sources = Path("/etc/apt/sources.list.d")
    for path in sorted(sources.glob("*.sources")) if sources.is_dir() else []:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("URIs:"):
                candidates += line.split()[1:]
    with contextlib.suppress(OSError):
        for line in Path("/etc/apt/sources.list").read_text(errors="replace").splitlines():
            words = line.split()
            if words[:1] == ["deb"]:
                candidates += [w for w in words[1:] if "://" in w][:1]
    for uri in candidates:
        if uri.rstrip("/").endswith("/debian"):
            return uri
    return "http://deb.debian.org/debian"


def image_label(tag: str, label: str) -> str | None:
    """A label of a local image; None when there is no such image."""
    result = run(
        ["docker", "image", "inspect", "-f", f'{{{{index .Config.Labels "{label}"}}}}', tag],
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def base_rootfs() -> Path:
    """The minbase root file system as a tarball, made by debootstrap once and cached."""
    tarball = CACHE_DIR / f"{SUITE}-minbase.tar"
    if tarball.is_file():
        return tarball
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    mirror = debian_mirror()
    log(f"debootstrap --variant=minbase {SUITE} from {mirror} (once; cached in {tarball})")
    with tempfile.TemporaryDirectory(dir=CACHE_DIR, prefix="rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(["debootstrap", "--variant=minbase", SUITE, str(rootfs), mirror], timeout=1800)
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        partial = tarball.with_suffix(".partial")
        run(["tar", "-C", str(rootfs), "-cf", str(partial), "."], timeout=600)
        partial.rename(tarball)
    return tarball


def content_hash(directory: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(directory).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def build_standins() -> dict[str, str]:
    """The stand-in base images (built where missing or changed); name -> tag."""
    if image_label(BASE_IMAGE, CONTENT_LABEL) is None:
        tarball = base_rootfs()
        log(f"docker import {tarball.name} {BASE_IMAGE}")
        run(["docker", "import", str(tarball), BASE_IMAGE])
    for name, tag in STANDINS.items():
        directory = STANDINS_DIR / name
        wanted = content_hash(directory)
        if image_label(tag, CONTENT_LABEL) == wanted:
            continue
        log(f"building {tag} from Debian's packages")
        run(
            [
                "docker",
                "build",
                "--network=host",
                "--label",
                f"{CONTENT_LABEL}={wanted}",
                "-t",
                tag,
                str(directory),
            ],
            timeout=1800,
        )
    return dict(STANDINS)


def host_pip_setup() -> tuple[list[str], dict[str, str]]:
    """Bind mounts and environment that give a container this machine's pip setup: its
    configuration files, the CA certificates it trusts, its local indexes and wheels."""
    paths = {Path("/etc/ssl/certs"), Path("/etc/pip.conf"), Path("/etc/xdg/pip")}
    for home_conf in (".config/pip/pip.conf", ".pip/pip.conf"):
        paths.add(Path.home() / home_conf)
    env = {key: value for key, value in os.environ.items() if key.startswith("PIP_")}
    listed = run([sys.executable, "-m", "pip", "config", "list"], check=False).stdout
    values = re.findall(r"='(.*)'$", listed, re.MULTILINE) + list(env.values())
    for value in values:
        for token in value.split():
            token = token.removeprefix("file://")
            if token.startswith("/"):
                path = Path(token)
                # A local index's pages link to files beside it (/opt/pypi/{simple,files}).
                paths.add(path.parent if path.name == "simple" else path)
    mounts = []
    for path in sorted(paths):
        if path.exists():
            target = path
            if path.is_relative_to(Path.home()):
                target = Path("/root") / path.relative_to(Path.home())
            mounts += ["-v", f"{path}:{target}:ro"]
    return mounts, env


def package_index(base_image: str) -> Path:
    """A PEP 503 index of wheels for requirements.txt, made once per requirements.txt and
    base image by pip inside the base image, with this machine's pip setup.

    Why: a container does not share the host's pip configuration nor the CA certificates
    it trusts (this machine reaches PyPI through a TLS-intercepting proxy only the host
    trusts). Building the wheels in the base image resolves environment markers for the
    interpreter that will install them (Debian's 3.11.2 needs async-timeout, 3.11.7 not).
    The image build then gets exactly these packages from the index, served on loopback,
    through the Dockerfile's PIP_INDEX_URL build argument, as from any mirror.
    """
    requirements = ROOT / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes() + base_image.encode())
    key = digest.hexdigest()[:16]
    index = CACHE_DIR / f"index-{key}"
    if (index / "simple").is_dir():
        return index
    log(f"pip wheel -r requirements.txt in {base_image} (once per requirements.txt)")
    wheels = CACHE_DIR / f"wheels-{key}"
    wheels.mkdir(parents=True, exist_ok=True)
    mounts, env = host_pip_setup()
    script = (
        "python3 -m venv /tmp/venv && /tmp/venv/bin/pip wheel -q -r /requirements.txt -w /wheels"
    )
    run(
        [
            *("docker", "run", "--rm", "--network=host", *mounts),
            *(f"--env={key}={value}" for key, value in env.items()),
            *("-v", f"{requirements}:/requirements.txt:ro", "-v", f"{wheels}:/wheels"),
            *(base_image, "sh", "-c", script),
        ],
        timeout=1800,
    )
    partial = CACHE_DIR / f"index-{key}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    for wheel in wheels.glob("*.whl"):
        project = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
        (partial / "simple" / project).mkdir(parents=True, exist_ok=True)
        shutil.copy2(wheel, partial / "simple" / project / wheel.name)
    partial.rename(index)
    shutil.rmtree(wheels, ignore_errors=True)
    return index


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """`directory` over HTTP on loopback, for the time of the block: on INDEX_PORT if it
    is free (the URL is a build argument: the same URL keeps Docker's layer cache of
    `pip install`), else on any free port."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", INDEX_PORT), handler)
    except OSError:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def build_app(base_image: str) -> None:
    """The System1 image from the project's Dockerfile, on `base_image`, its packages
    from the local index (see `package_index`)."""
    with serve(package_index(base_image)) as index_url:
        log(f"docker build --build-arg BASE_IMAGE={base_image} -t {APP_IMAGE} .")
        run(
            [
                *("docker", "build", "--network=host", "-t", APP_IMAGE),
                *("--build-arg", f"BASE_IMAGE={base_image}"),
                *("--build-arg", f"PIP_INDEX_URL={index_url}/simple/"),
                str(ROOT),
            ],
            timeout=1800,
        )


# --------------------------------------------------------------------------------------
# docker-compose
# --------------------------------------------------------------------------------------


def compose_argv(env_file: Path, files: list[Path] | None = None) -> list[str]:
    """`docker-compose` for the test's project; by default the shipped file and the
    override."""
    files = files or [ROOT / "docker-compose.yml", OVERRIDE]
    argv = ["docker-compose", "--project-name", PROJECT, "--project-directory", str(ROOT)]
    argv += ["--env-file", str(env_file)]
    for path in files:
        argv += ["-f", str(path)]
    return argv


def render(env_file: Path, out: Path) -> Path:
    """The shipped file merged with the override (`docker-compose config`), minus the
    published `ports:` of host-network services, written to `out`.

    Docker ignores published ports on the host network, but docker-compose 1.29 refuses
    them ("host" network_mode is incompatible with port_bindings) and an override cannot
    remove a list entry of the file it overrides: the merged file drops them instead.
    """
    merged = yaml.safe_load(run([*compose_argv(env_file), "config"]).stdout)
    for service in merged["services"].values():
        if service.get("network_mode") == "host":
            service.pop("ports", None)
    out.write_text(yaml.safe_dump(merged, sort_keys=False))
    return out


def leftovers() -> dict[str, list[str]]:
    """The project's containers, volumes and networks still in the engine."""
    label = f"label=com.docker.compose.project={PROJECT}"
    found = {}
    for kind, argv in {
        "containers": ["docker", "ps", "-a", "-q", "--filter", label],
        "volumes": ["docker", "volume", "ls", "-q", "--filter", label],
        "networks": ["docker", "network", "ls", "-q", "--filter", label],
    }.items():
        found[kind] = run(argv, check=False).stdout.split()
    return found


def remove_leftovers() -> None:
    """What `down -v` would have removed, for a run that died before it."""
    found = leftovers()
    if found["containers"]:
        run(["docker", "rm", "-f", "-v", *found["containers"]], check=False)
    if found["volumes"]:
        run(["docker", "volume", "rm", "-f", *found["volumes"]], check=False)
    if found["networks"]:
        run(["docker", "network", "rm", *found["networks"]], check=False)


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "tools":
        print(install_tools())
        return 0
    if command == "down":
        remove_leftovers()
        print(f"compose test: leftovers now {leftovers()}")
        return 0
    print("usage: python -m devtools.compose.driver tools|down", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
