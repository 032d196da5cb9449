# arbor: developer entry points. CI runs `make test` (see .ci/run).

CARGO ?= cargo
DEPS_DIR := target/test-deps

.PHONY: all test deps fmt-check clippy run bench

all: test

# End-to-end tests need curl and dlrepo 0.44's dlrepo-cli (tests/deps/install).
deps:
	tests/deps/install >/dev/null

test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings
	ARBOR_TEST_DLREPO_CLI="$$(cat $(DEPS_DIR)/dlrepo-cli.path)" $(CARGO) test --locked

run:
	$(CARGO) run --release -- serve --no-auth

bench:
	bench/run
