#!/usr/bin/env bash
# The Python package (python/): built with maturin, tested as a user installs it.
#   scripts/python.sh wheel     the wheel, into target/wheels, in cargo's dev profile (the
#                               dependencies at opt-level 2): after `cargo test --workspace`
#                               it compiles only pyo3, numpy and the bindings
#   scripts/python.sh test      a fresh venv (.py/test), the wheel and the test
#                               requirements (Ray among them) installed with pip, then
#                               pytest python/tests; arguments go to pytest
#   scripts/python.sh features  crates whose features differ between the wheel's build
#                               and `cargo test --workspace` (each, and burn above it,
#                               would compile a second time)
#   scripts/python.sh release   an optimised abi3 wheel, into target/wheels
# PYTHON picks the interpreter (default python3, 3.9 or newer).
set -euo pipefail
cd "$(dirname "$0")/.."

py="${PYTHON:-python3}"
tools=.py/build
venv=.py/test

build_tools() {
  if [ ! -x "$tools/bin/maturin" ]; then
    echo "python: installing maturin into $tools"
    "$py" -m venv "$tools"
    "$tools/bin/pip" install -q "maturin>=1.9,<2"
  fi
}

wheel() {
  build_tools
  rm -f target/wheels/metricann-*.whl
  "$tools/bin/maturin" build --profile "$1" -m python/Cargo.toml -o target/wheels -i "$py" ${2:+$2}
  ls target/wheels/metricann-*.whl
}

# Each crate's features as `name version|feature` lines, the union over every
# place it appears in the tree (cargo compiles a crate once per feature set, and a
# crate differing here gives every crate above it, burn included, a new hash).
feature_pairs() {
  cargo tree "$@" -f '{p}|{f}' --prefix none | sed 's/ (\*)//; s/ ([^)]*)|/|/' |
    awk -F'|' '{ print $1 "|"; n = split($2, f, ","); for (i = 1; i <= n; i++) print $1 "|" f[i] }' | sort -u
}

features() {
  local ws py both differ
  ws=$(feature_pairs --workspace -e normal,build,dev)
  py=$(feature_pairs -p metricann-python -e normal,build)
  both=$(comm -12 <(echo "$ws" | cut -d'|' -f1 | sort -u) <(echo "$py" | cut -d'|' -f1 | sort -u))
  differ=$(comm -3 <(echo "$ws" | grep -v '|$' | grep -F -f <(sed 's/$/|/' <<<"$both")) \
    <(echo "$py" | grep -v '|$' | grep -F -f <(sed 's/$/|/' <<<"$both")) | tr -d '\t' | cut -d'|' -f1 | sort -u)
  if [ -n "$differ" ]; then
    echo "python: these crates build with other features for the wheel than for cargo test" >&2
    echo "(pin the test build's features in python/Cargo.toml):" >&2
    echo "$differ" >&2
    exit 1
  fi
  echo "python: the wheel's dependencies have cargo test's features"
}

run_tests() {
  local whl
  whl=$(ls target/wheels/metricann-*.whl 2>/dev/null | head -1)
  [ -n "$whl" ] || { echo "python: no wheel in target/wheels; run scripts/python.sh wheel" >&2; exit 1; }
  "$py" -m venv --clear "$venv"
  "$venv/bin/pip" install -q -r python/tests/requirements.txt -r python/tests/requirements-ray.txt
  "$venv/bin/pip" install -q "$whl"
  # From the tests folder: `import metricann` must find the installed wheel, not python/.
  # Unbuffered: if the interpreter dies, the log shows how far it got.
  (cd python/tests && PYTHONUNBUFFERED=1 "../../$venv/bin/python" -m pytest -q -p no:cacheprovider "${@}")
}

case "${1:-}" in
  wheel) wheel dev ;;
  release) wheel release "--strip" ;;
  features) features ;;
  test) shift; run_tests "$@" ;;
  *) sed -n '2,12p' "$0" >&2; exit 2 ;;
esac
