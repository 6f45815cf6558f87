# Quick start: `make up` (run the platform) and `make test` (run every test).
# Every install step lives here; both targets are idempotent (stamps skip work already done).

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
BUN_PKG := $(shell grep -q avx2 /proc/cpuinfo && echo bun-linux-x64 || echo bun-linux-x64-baseline)
BUN := .tools/node_modules/@oven/$(BUN_PKG)/bin/bun
# Without this, reflex runs a speed test against registry mirrors this network cannot reach.
export NPM_CONFIG_REGISTRY ?= $(shell npm config get registry 2>/dev/null)
export REFLEX_TELEMETRY_ENABLED := false
export REFLEX_CHECK_LATEST_VERSION := 0
export REFLEX_USE_SYSTEM_BUN := 1
export PATH := $(CURDIR)/$(dir $(BUN)):$(CURDIR)/$(BIN):$(PATH)

.PHONY: up test test-fast install lint format clean-data

up: install
	$(BIN)/vtp up

test: install lint
	$(BIN)/pytest -q -ra --durations=25

# The inner loop: no browser, no real training, no whole stack (under two minutes).
FAST := not (slow or ui or e2e or trainer or reliability or postgres or fleet or compose or client or deploy or ops or sweeps or models)
test-fast: install lint
	$(BIN)/pytest -q -ra -m "$(FAST)"

AXE := .tools/axe/node_modules/axe-core/axe.min.js
OIDC := .tools/oidc/node_modules/oidc-provider/package.json

install: $(VENV)/.installed $(BUN) $(AXE) $(OIDC) .tools/.system

# Debian packages: redis-server (the queue), chromium (browser tests), PostgreSQL (parity test),
# prometheus (promtool and a real Prometheus for the alert-rule and dashboard tests).
.tools/.system: Makefile
	@mkdir -p .tools
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

# torch/torchvision first, pinned to the builds the machine's package cache holds (a CUDA build that runs on CPU too).
# The client (client/, its own package: httpx + pydantic, the `vtp` command) is installed
# editable too, after the backend: the backend adds its stack commands to that `vtp`, and an
# older backend install being replaced may take a `vtp` script with it.
$(VENV)/.installed: pyproject.toml client/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[trainer,dev]'
	$(BIN)/pip install -q -e './client[cli]'
	@touch $@

# Reflex's own bun download cannot work offline: take bun from the npm registry instead.
$(BUN):
	npm install --prefix .tools --no-audit --no-fund --ignore-scripts @oven/$(BUN_PKG)@1.4.5
	@test -x $@

# axe-core, injected into pages by the accessibility tests.
$(AXE):
	npm install --prefix .tools/axe --no-audit --no-fund axe-core@4
	@test -f $@

# oidc-provider (a certified OpenID Connect provider), started by the SSO tests.
$(OIDC):
	npm install --prefix .tools/oidc --no-audit --no-fund oidc-provider@9.13.3
	@test -f $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy services trainer_runner client/vtp_client

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .
