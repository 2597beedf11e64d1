# The two commands: `make demo` and `make test`. Everything else is what they call.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
export CARGO_TERM_COLOR ?= never

.PHONY: test setup test-native check-wasm lint fixture bench demo pkg

## Install what the tests need, then run them all.
test: setup test-native check-wasm test-web test-demo
	@echo "make test: all suites passed"

setup:
	scripts/setup.sh

test-native:
	cargo test --workspace

## The library must keep compiling for the browser.
check-wasm:
	cargo check -p metricann --lib --target wasm32-unknown-unknown
	tests/wasm_simd/run.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## Regenerate the committed glyph fixture from the fonts (needs the font packages).
fixture:
	scripts/fixture.sh

## Criterion benchmarks (minutes; not part of `make test`).
bench:
	cargo bench -p metricann

# The npm package and its browser/Node/Vite tests (pkg, web-pkg, web-model, test-web, lint-wasm, bench-web).
include scripts/web.mk
