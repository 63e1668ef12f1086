# AgentRelay: `make run` to try it, `make test` to check it.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: run build test test-deps test-rust lint fmt clean

## run: build everything and start HQ with a local runner (prints the URL and how to log in)
run: build
	@scripts/run-dev.sh

## build: release binaries
build:
	$(CARGO) build --release --bins

## test: install what the tests need, then run every test
test: test-deps test-rust

test-deps:
	@command -v cargo-nextest >/dev/null 2>&1 || $(CARGO) install cargo-nextest --locked

test-rust:
	$(CARGO) build --workspace --bins
	$(CARGO) nextest run --workspace --profile $(if $(CI),ci,default)

## lint: formatting and clippy, as before each commit
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
