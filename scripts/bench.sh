#!/usr/bin/env bash
# The benchmark suite of issue 5, from one command:
#
#   scripts/bench.sh [--runs 3] [--quick] [--no-peer] [--no-limits] [--perf FILE]
#                    [--only KEY,KEY|security] [--gregor-bin PATH] [--static-bin PATH] [--tansu-bin PATH] [--no-build]
#
# Builds gregor (release) and the librdkafka-based bench tool (bench/, its own
# cargo workspace), then runs bench/suite.py: every scenario against a gregor
# it starts, the peer Tansu 0.6.0 (memory engine; TANSU_BIN or `tansu` on PATH
# or /work/.peers/tansu/bin/tansu) and this machine's limits (iperf3, fio).
# Raw lines go to bench/results/<date>.jsonl, the markdown table to stdout
# and bench/results/<date>.md, a plot to bench/results/<date>.png.
# Builds run under `nice` so the suite can share a machine with other work.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
args=()
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    *) args+=("$arg") ;;
  esac
done

if [ "$build" = 1 ]; then
  nice -n 10 cargo build --release --bin gregor
  # The static build the images ship, benchmarked beside the default one.
  if command -v musl-gcc >/dev/null && rustup target list --installed 2>/dev/null | grep -q musl; then
    CC_x86_64_unknown_linux_musl=musl-gcc nice -n 10 cargo build --release \
      --target x86_64-unknown-linux-musl --bin gregor
  else
    echo "[bench] no musl target or musl-gcc: the static column stays empty" >&2
  fi
  (cd bench && nice -n 10 cargo build --release)
fi
for tool in iperf3 fio; do
  command -v "$tool" >/dev/null || echo "[bench] $tool missing (apt-get install $tool): its limit is skipped" >&2
done
python3 bench/suite.py "${args[@]+"${args[@]}"}"

# The plot needs matplotlib; the test venv has it once this has run.
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
"$PY" -c "import matplotlib" 2>/dev/null || "$PY" -m pip install -q matplotlib 2>/dev/null || true
latest=$(ls -t bench/results/*.jsonl | head -1)
"$PY" scripts/bench_plot.py "$latest" -o "${latest%.jsonl}.png" || echo "[bench] no plot (matplotlib missing)" >&2
