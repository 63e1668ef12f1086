# AgentRelay: `make run` to try it, `make test` to check it.
SHELL := /bin/bash
CARGO ?= cargo
NPM ?= npm
CHROMIUM ?= /usr/bin/chromium

# CI builds once from a clean clone: incremental state would only cost disk.
ifdef CI
export CARGO_INCREMENTAL := 0
endif

# Where cargo puts the binaries: CARGO_TARGET_DIR, else .cargo/config's build.target-dir, else
# target/. Asked once; the scripts get $(TARGET_DIR)/<profile> as AGENTRELAY_BIN_DIR.
TARGET_DIR := $(or $(shell $(CARGO) metadata --no-deps --format-version 1 2>/dev/null \
  | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p'),$(CARGO_TARGET_DIR),target)

.PHONY: run build web web-deps test test-deps agent-clis test-rust test-web test-bench test-deploy test-api bench lint fmt clean

## run: build everything and start HQ with a local runner (prints the URL and how to log in)
run: build
	@AGENTRELAY_BIN_DIR='$(TARGET_DIR)/release' scripts/run-dev.sh

## build: the dashboard, then release binaries embedding it
build: web
	$(CARGO) build --release --bins

# The dashboard is rebuilt only when one of its inputs changed: vite rewrites web/dist, and HQ's
# build.rs recompiles HQ (minutes in release) whenever web/dist changes. Unit tests are not bundled.
WEB_INPUTS := $(shell find web/src web/public -type f ! -name '*.test.ts' ! -name '*.test.tsx') \
  web/index.html web/vite.config.ts web/tsconfig.json web/package.json $(wildcard web/package-lock.json)
web: web/dist/index.html
web/dist/index.html: web/node_modules/.installed $(WEB_INPUTS)
	cd web && $(NPM) run build

# With a lock file, npm ci installs exactly what it says and never rewrites it. The lock must list
# every platform's optional packages (as npm install writes it), else npm ci refuses it as out of sync.
web-deps: web/node_modules/.installed
web/node_modules/.installed: web/package.json $(wildcard web/package-lock.json)
	cd web && $(NPM) $(if $(wildcard web/package-lock.json),ci,install) --no-audit --no-fund
	@touch $@

## test: install what the tests need, then run every test
test: test-deps web test-rust test-api test-web test-bench test-deploy

# The PyPI tools the tests use live in .venv (ignored by git), at these versions: schemathesis for
# test-api, asciinema to read recordings back, PyYAML for check-deploy.py. The tests find them
# first on PATH. oidc-provider-mock is the real OpenID provider the single sign-on tests start on
# loopback (0.3.4 is its last release for Python 3.11, Debian's).
SCHEMATHESIS_VERSION := 4.32.5
OIDC_PROVIDER_MOCK_VERSION := 0.3.4
ASCIINEMA_VERSION := 2.4.0
PYYAML_VERSION := 6.0.4
export PATH := $(CURDIR)/.venv/bin:$(PATH)

# The real agent CLIs for crates/e2e/tests/real_agents.rs and the browser test: these versions,
# in .test-tools/agents (ignored by git, never in the dashboard's dependencies). When npm cannot
# install them, make test goes on and those tests skip, saying so loudly.
AGENT_CLIS := @anthropic-ai/claude-code@2.1.332 @openai/codex@0.171.0 @google/gemini-cli@0.61.0
AGENT_DIR := $(CURDIR)/.test-tools/agents
export AGENTRELAY_AGENT_BIN := $(AGENT_DIR)/node_modules/.bin

test-deps: web-deps agent-clis
	@command -v cargo-nextest >/dev/null 2>&1 || $(CARGO) install cargo-nextest --locked
	@[ -x .venv/bin/pip ] || python3 -m venv .venv 2>/dev/null || { \
	  echo "Installing Debian's python3-venv for the test tools"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv && python3 -m venv .venv; }
	@.venv/bin/schemathesis --version 2>/dev/null | grep -qx 'schemathesis, version $(SCHEMATHESIS_VERSION)' || \
	  .venv/bin/pip install --quiet 'schemathesis==$(SCHEMATHESIS_VERSION)'
	@.venv/bin/python -c 'import asciinema, yaml' 2>/dev/null || \
	  .venv/bin/pip install --quiet 'asciinema==$(ASCIINEMA_VERSION)' 'pyyaml==$(PYYAML_VERSION)'
	@.venv/bin/pip show oidc-provider-mock 2>/dev/null | grep -qx 'Version: $(OIDC_PROVIDER_MOCK_VERSION)' || \
	  .venv/bin/pip install --quiet 'oidc-provider-mock==$(OIDC_PROVIDER_MOCK_VERSION)'
	@if [ ! -x $(CHROMIUM) ]; then \
	  echo "Installing Debian's chromium for the browser tests"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	fi
	@if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || ! command -v nats-server >/dev/null \
	    || { ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; }; then \
	  echo "Installing Debian's postgresql, nats-server and nginx for the cluster tests"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql nats-server nginx; \
	fi
	@scripts/test-services.sh

agent-clis:
	@if [ "$$(cat '$(AGENT_DIR)/.installed' 2>/dev/null)" != '$(AGENT_CLIS)' ]; then \
	  mkdir -p '$(AGENT_DIR)' && rm -f '$(AGENT_DIR)/.installed' && \
	  $(NPM) install --prefix '$(AGENT_DIR)' --no-audit --no-fund --no-save --loglevel=error $(AGENT_CLIS) \
	    && echo '$(AGENT_CLIS)' > '$(AGENT_DIR)/.installed' \
	    || echo 'WARNING: could not install the agent CLIs ($(AGENT_CLIS)); the real-agent tests will skip' >&2; \
	fi

test-rust:
	$(CARGO) build --workspace --bins
	$(CARGO) nextest run --workspace --profile $(if $(CI),ci,default)

# The OpenAPI document against a live HQ: schemathesis, every check, on the debug binaries above.
test-api:
	AGENTRELAY_BIN_DIR='$(TARGET_DIR)/debug' scripts/check-openapi.sh

# The browser tests run the debug binaries built above, which read web/dist from disk.
test-web: web-deps
	cd web && $(NPM) test
	cd web && CHROMIUM_PATH=$(CHROMIUM) AGENTRELAY_BIN_DIR='$(TARGET_DIR)/debug' $(NPM) run e2e

# No container engine runs here: parse and cross-check Dockerfile, compose file and systemd unit.
test-deploy:
	AGENTRELAY_BIN_DIR='$(TARGET_DIR)/debug' python3 scripts/check-deploy.py

# The benchmark in quick mode, only to prove it still runs (debug build, no thresholds).
test-bench:
	BENCH_QUICK=1 '$(TARGET_DIR)/debug/agentrelay-bench' --out '$(TARGET_DIR)/bench-quick.json'

## bench: release build, then the full benchmark (prints a table, writes bench.json in the target dir)
bench: build
	$(CARGO) build --release -p agentrelay-bench
	'$(TARGET_DIR)/release/agentrelay-bench' --out '$(TARGET_DIR)/bench.json'

## lint: formatting, clippy and the web linters, as before each commit
lint: web-deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --all-targets -- -D warnings
	cd web && $(NPM) run lint

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf web/dist web/node_modules
