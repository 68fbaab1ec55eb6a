# Everyday commands. RUSTY_V8_ARCHIVE is exported here when the shared prebuilt V8 exists.
ifneq (,$(wildcard ../shared/v8/librusty_v8.a.gz))
export RUSTY_V8_ARCHIVE := $(abspath ../shared/v8/librusty_v8.a.gz)
endif

.PHONY: run fmt lint test bench ci

run:
	cargo run --release -p nano-dataplane --bin nano

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets -- -D warnings

test:
	cargo build --workspace --bins && cargo test --workspace

bench:
	bench/run.sh

ci:
	bash .ci/run
