# System1 developer commands. On a bare machine with only Python 3.11+:
#   make run     the whole stack (embedded PostgreSQL and Redis, offline LLM unless configured)
#   make test    lint, then the test suite
#   make browser Debian's chromium for the browser tests (make test runs it; may skip)
#   make compose-test  the image built and the compose stack run, scaled and broken (may skip)
#   make bench   the benchmark (minutes): results, table and plots in bench/results/
#   make webapp-check MOJODEX=<checkout>  the Mojodex web app built and driven against System1
#   make soak    the soak under faults (10 minutes of load; soak-quick: one minute)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Touched after a successful install: pip runs again only when a requirements file changes.
STAMP := $(VENV)/.installed

.PHONY: venv run lint format test browser compose-test bench bench-quick webapp-check soak soak-quick long-answers data-scale

venv: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Order-only on the interpreter: creating the venv must not count as a change.
$(STAMP): requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install -r requirements-dev.txt
	touch $@

run: venv
	$(BIN)/python -m devtools.devstack

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Headless Chromium (Debian's) for the playground's browser tests. Never fails: where it
# cannot be installed (not root, no apt-get, no network) those tests skip and say why.
CHROMIUM_PACKAGES := chromium fonts-dejavu-core fonts-noto-color-emoji
browser:
	@if [ -x /usr/bin/chromium ]; then \
		echo "browser tests: using $$(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "browser tests: installing Debian's chromium"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $(CHROMIUM_PACKAGES) >/dev/null; } \
		|| echo "browser tests: chromium could not be installed, they will be skipped"; \
	else \
		echo "browser tests: no /usr/bin/chromium and no root apt-get to install it, skipped"; \
	fi

# Two pytest-xdist workers, each with its own stack (a file stays on one worker): the
# suite mostly waits on sockets and countdowns, so this halves its time on 2 cores.
TEST_WORKERS ?= 2
test: lint browser
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --ignore=tests/compose
	$(MAKE) --no-print-directory compose-test

# The Dockerfile and docker-compose.yml run for real (tests/compose/, a few minutes; cold,
# the stand-in images are built first). Installs Debian's docker.io, docker-compose and
# debootstrap where root and apt-get exist; where no Docker engine can run, it skips.
compose-test: venv
	@$(BIN)/python -m devtools.compose.driver tools
	$(BIN)/python -m pytest -s tests/compose

# The full benchmark against its floors (see bench/README.md). BENCH_ARGS passes
# options, e.g. `make bench BENCH_ARGS="--levels 1,50 --duration 10"`.
bench: venv
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python -m bench.long_answers
	$(BIN)/python -m bench.data_scale

# Bytes and events per answer of 250-16,000 characters, fixed vs widening mojo_token window.
long-answers: venv
	$(BIN)/python -m bench.long_answers

# Cost as the data grows: empty vs a filled database (10M messages; the fill is cached as a
# dump under ~/.cache/system1/bench). DATA_SCALE_ARGS passes options (--help).
data-scale: venv
	$(BIN)/python -m bench.data_scale $(DATA_SCALE_ARGS)

# The soak under faults (see bench/README.md): N sessions for M minutes while processes are
# killed and Redis, PostgreSQL and the LLM restart; SOAK_ARGS passes options, e.g.
# `make soak SOAK_ARGS="--seed 7"` replays a run's fault schedule.
soak: venv
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

soak-quick: venv
	$(BIN)/python -m bench.soak --quick --out bench/results/tmp $(SOAK_ARGS)

# The tiny run that the test suite also drives; results go to bench/results/tmp/.
bench-quick: venv
	$(BIN)/python -m bench --quick --out bench/results/tmp $(BENCH_ARGS)

# The Mojodex web app, unchanged, built from a Mojodex checkout (npm ci, next build with
# Google Fonts answered offline) and driven in Debian's chromium against `make run`'s stack.
# Not part of `make test`: it needs that checkout. Screenshots in bench/results/webapp/.
webapp-check: venv browser
	@test -n "$(MOJODEX)" || { echo "usage: make webapp-check MOJODEX=<a hoomano/mojodex checkout>"; exit 2; }
	$(BIN)/python -m devtools.webapp_check "$(MOJODEX)" $(WEBAPP_CHECK_ARGS)
