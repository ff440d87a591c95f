#!/usr/bin/env bash
# Runs every test gregor has:
#   1. formatting and lint gates, the Rust unit, property and integration tests;
#   2. the real-client suite (kafka-python, confluent-kafka, aiokafka, kcat and
#      gregor's own tools) against the real binary, including a seconds-long
#      smoke of the benchmark tool (bench/, on librdkafka);
#   3. the container suite (scratch images, walkthrough, compose, helm, remote
#      access), when a Docker engine answers.
# Needs kcat, cmake and Python 3 with venv (.ci/run installs them on Debian);
# Python packages go into .venv. SKIP_CONTAINERS=1 skips part 3.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q -r tests/clients/requirements.txt -r tests/containers/requirements.txt

echo "== gates and Rust tests"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo build --bins
cargo test --all-targets

echo "== benchmark tool (built for its smoke test)"
(cd bench && cargo build --release)

echo "== real clients against the real binary"
"$VENV/bin/python" -m pytest -q tests/clients "$@"

if [ "${SKIP_CONTAINERS:-0}" != 1 ] && docker info >/dev/null 2>&1; then
  echo "== containers"
  "$VENV/bin/python" -m pytest -q tests/containers
else
  echo "== containers skipped (no Docker engine, or SKIP_CONTAINERS=1)"
fi
