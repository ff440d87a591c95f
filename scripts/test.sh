#!/usr/bin/env bash
# Runs every test gregor has:
#   1. formatting and lint gates, the Rust unit, property and integration tests;
#   2. the real-client suite (kafka-python, confluent-kafka, aiokafka, kcat and
#      gregor's own tools) against the real binary, including a seconds-long
#      smoke of the benchmark tool (bench/, on librdkafka);
#   3. the chaos harness's checker and its single-node runs (tests/chaos);
#   4. the container suite (scratch images, walkthrough, compose, helm, remote
#      access), when a Docker engine answers.
# Needs kcat, cmake, libcurl and OpenSSL headers and Python 3 with venv: on Debian as
# root they are installed here; elsewhere it says in one line what to
# install. Python packages go into .venv. SKIP_CONTAINERS=1 skips part 4.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the suite needs, by the command or file that shows them.
missing=()
command -v kcat >/dev/null || missing+=(kcat)
command -v cmake >/dev/null || missing+=(cmake)
[ -e /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -e /usr/include/curl/curl.h ] \
  || missing+=(libcurl4-openssl-dev)
# The bench tool's librdkafka speaks TLS and SASL/SCRAM through OpenSSL.
[ -e /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  else
    echo "scripts/test.sh needs: ${missing[*]} (Debian: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

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
# --durations: the slowest tests are named in every log, to keep the run short.
"$VENV/bin/python" -m pytest -q --durations=15 tests/clients "$@"

containers=0
if [ "${SKIP_CONTAINERS:-0}" != 1 ] && docker info >/dev/null 2>&1; then
  containers=1
  # Built once, before the chaos stage: its three-node runs need them too.
  echo "== images (the static binary and the scratch images)"
  scripts/build-images.sh
fi

echo "== chaos: the checker's unit tests, the single-node kill -9 loop and, as root with Docker and the images, the three-node smoke and the acks=1 control run (about 2 + 4 minutes)"
"$VENV/bin/python" -m pytest -q --durations=5 tests/chaos

if [ "$containers" = 1 ]; then
  echo "== containers"
  GREGOR_IMAGES_PREBUILT=1 "$VENV/bin/python" -m pytest -q --durations=10 tests/containers
else
  echo "== containers skipped (no Docker engine, or SKIP_CONTAINERS=1)"
fi
