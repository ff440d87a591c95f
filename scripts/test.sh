#!/usr/bin/env bash
# Runs every test gregor has: formatting and lint gates, the Rust unit and
# integration tests, then the real-client suite (kafka-python,
# confluent-kafka, aiokafka, kcat) against the real binary.
# Expects the Python clients in .venv (see .ci/run) and kcat on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q -r tests/clients/requirements.txt
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo build --bins
cargo test --all-targets
"$VENV/bin/python" -m pytest -q -x tests/clients "$@"
