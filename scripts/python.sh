#!/usr/bin/env bash
# The Python package (python/): built with maturin, tested as a user installs it.
#   scripts/python.sh wheel     the wheel, into target/wheels, in cargo's dev profile (the
#                               dependencies at opt-level 2). It compiles burn once more:
#                               cargo keys `cargo test`'s dependencies by the profile name
#                               `test`, which a library build cannot use (docs/testing.md)
#   scripts/python.sh test      a fresh venv (.py/test), the wheel and the test
#                               requirements (Ray among them) installed with pip, then
#                               pytest python/tests; arguments go to pytest
#   scripts/python.sh features  crates whose features differ between the wheel's build
#                               and `cargo test --workspace`
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

features() {
  local ws py_only
  ws=$(cargo tree --workspace -e normal,build,dev -f '{p} {f}' --prefix none | sed 's/ (\*)//' | sort -u)
  py_only=$(cargo tree -p metricann-python -e normal,build -f '{p} {f}' --prefix none | sed 's/ (\*)//' | sort -u |
    comm -13 <(echo "$ws") -)
  if [ -n "$py_only" ]; then
    echo "python: these crates build with other features for the wheel than for cargo test" >&2
    echo "(pin the test build's features in python/Cargo.toml):" >&2
    echo "$py_only" >&2
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
  (cd python/tests && "../../$venv/bin/python" -m pytest -q -p no:cacheprovider "${@}")
}

case "${1:-}" in
  wheel) wheel dev ;;
  release) wheel release "--strip" ;;
  features) features ;;
  test) shift; run_tests "$@" ;;
  *) sed -n '2,12p' "$0" >&2; exit 2 ;;
esac
