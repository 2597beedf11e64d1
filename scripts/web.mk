# The npm package, included by the Makefile.
.PHONY: pkg web-pkg web-model test-web test-edge lint-wasm bench-web bench-web-embed bench-web-ann bench-web-ann-1m bench-edge

# `make pkg`: the release package in pkg/ (cargo → wasm-bindgen → wasm-opt → pkg-config/ files),
# built with the size-optimised `wasm` profile; `make pkg WASM_PROFILE=web-test` for a quick one.
WASM_PROFILE ?= wasm
WEB_TEST_PKG := target/pkg-web-test
WEB_MODEL_DIR := target/web-model

pkg: setup-demo
	scripts/build-pkg.sh $(WASM_PROFILE)
	node --input-type=module -e "import { initialize, MetricAnn } from '$(CURDIR)/pkg/node.js'; \
	  await initialize(); console.log('pkg: loads in Node.js, version', MetricAnn.version)"
	cd pkg && npm pack --dry-run --json >/dev/null && echo "pkg: npm pack --dry-run ok"

## The package the web tests use (light optimisation: quick to compile).
web-pkg:
	PKG_DIR=$(WEB_TEST_PKG) scripts/build-pkg.sh web-test

## Model bundles for the web tests: default.bundle and other.bundle (another fingerprint).
web-model:
	scripts/web-model.sh $(WEB_MODEL_DIR)

## Browser (headless Debian Chromium, IndexedDB), Node and Vite-consumer tests of the package;
## galleries passing to and from the Python package (within `make test`, after test-python made
## its venv, that one must run; alone it skips without the venv).
test-web: setup web-pkg web-model
	cd tests/web && METRICANN_PKG=$(CURDIR)/$(WEB_TEST_PKG) METRICANN_MODEL_DIR=$(CURDIR)/$(WEB_MODEL_DIR) \
	  $(if $(filter test,$(MAKECMDGOALS)),METRICANN_REQUIRE_PYTHON=1) \
	  node --test --test-concurrency=1 browser.test.mjs faults.test.mjs threads.test.mjs node.test.mjs vite.test.mjs python.test.mjs

## The package on the edge: examples/edge/ run on Cloudflare's workerd (wrangler dev), Deno and
## Bun, each from its npm package (tests/edge/package.json).
test-edge: setup web-pkg
	cd tests/edge && METRICANN_PKG=$(CURDIR)/$(WEB_TEST_PKG) node --test --test-concurrency=1 edge.test.mjs

## Cold start (10k-class gallery) and recognition latency of the edge examples, release package;
## results in bench/results/edge.json. Not in `make test`.
bench-edge: setup
	scripts/build-pkg.sh wasm
	METRICANN_PKG=$(CURDIR)/pkg node bench/edge/bench.mjs

lint-wasm:
	cargo clippy -p metricann --lib --target wasm32-unknown-unknown -- -D warnings

## In-browser benchmark (embed/search/enroll at 10k and 100k vectors, reload, wasm size); not in `make test`.
bench-web: setup web-model
	scripts/build-pkg.sh wasm
	METRICANN_PKG=$(CURDIR)/pkg METRICANN_MODEL_DIR=$(CURDIR)/$(WEB_MODEL_DIR) node bench/web/bench.mjs

## Embed latency of the shipped models (objects at 160² and 224², glyphs) in Chromium, CPU and
## WebGPU; results in bench/results/browser-embed.json. Not in `make test`.
bench-web-embed: setup
	scripts/build-pkg.sh wasm
	METRICANN_PKG=$(CURDIR)/pkg node bench/web/embed.mjs

## In-browser ANN benchmark against npm hnswlib-wasm (build, search, enroll + persist, reload,
## memory) at BENCH_ANN_SIZES vectors; results in bench/results/browser-ann-*.json. Not in `make test`.
BENCH_ANN_SIZES ?= 10000,100000
bench-web-ann: setup web-model
	scripts/build-pkg.sh wasm
	METRICANN_PKG=$(CURDIR)/pkg METRICANN_MODEL_DIR=$(CURDIR)/$(WEB_MODEL_DIR) node bench/web/ann.mjs --sizes $(BENCH_ANN_SIZES)

# ---- The demo app: www/, served with the package at /pkg/ ----
.PHONY: demo demo-model test-demo
DEMO_PORT ?= 8080
DEMO_SCREENSHOTS := target/demo-screenshots

## The models the demo ships, as committed: www/models/objects.bundle (the default) and
## glyphs.bundle. A checkout without them (a fork that dropped them) gets the test bundle
## (scripts/web-model.sh) in their place, never over an existing file.
demo-model:
	@for m in objects glyphs; do \
	  if [ ! -f www/models/$$m.bundle ]; then \
	    $(MAKE) --no-print-directory web-model && mkdir -p www/models && \
	    cp $(WEB_MODEL_DIR)/default.bundle www/models/$$m.bundle && \
	    echo "demo-model: no committed www/models/$$m.bundle; using $(WEB_MODEL_DIR)/default.bundle"; \
	  fi; \
	done

## `make demo`: install what is missing, build the package (release), serve www/ on
## http://127.0.0.1:$(DEMO_PORT)/.
demo: setup-demo pkg demo-model
	node scripts/demo-server.mjs --root www --pkg pkg --port $(DEMO_PORT)

## End-to-end tests of the demo: Debian Chromium with a fake camera (y4m made by ffmpeg),
## driven by playwright-core; screenshots in target/demo-screenshots.
test-demo: setup web-pkg demo-model
	cd tests/web && METRICANN_PKG=$(CURDIR)/$(WEB_TEST_PKG) METRICANN_SCREENSHOTS=$(CURDIR)/$(DEMO_SCREENSHOTS) \
	  node --test --test-concurrency=1 demo.test.mjs

## The browser ANN benchmark at 1M vectors: both indexes built natively (a tab would take
## hours), with the same vectors and parameters (bench/browser_import.py), then imported,
## searched, enrolled into and reloaded in headless Chromium. Results in
## bench/results/browser-ann-import-*.json. Needs target/bench-venv (bench/ann_vs_hnswlib.py).
BENCH_IMPORT_N ?= 1000000
BENCH_IMPORT_QUANTIZE ?= int8
## A reload's time varies from run to run on a shared machine: the median of this many.
BENCH_RELOADS ?= 7
bench-web-ann-1m: setup web-model
	cargo build --release -p metricann-trainer
	scripts/build-pkg.sh wasm
	dir=$$(target/bench-venv/bin/python bench/browser_import.py --n $(BENCH_IMPORT_N) --quantize $(BENCH_IMPORT_QUANTIZE)) && \
	  METRICANN_PKG=$(CURDIR)/pkg METRICANN_MODEL_DIR=$(CURDIR)/$(WEB_MODEL_DIR) node bench/web/ann.mjs --import "$$dir" --reloads $(BENCH_RELOADS)
