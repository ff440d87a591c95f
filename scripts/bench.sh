#!/usr/bin/env bash
# The benchmark suite of issue 5, from one command:
#
#   scripts/bench.sh [--runs 3] [--quick] [--no-peer] [--no-limits] [--perf FILE]
#                    [--gregor-bin PATH] [--tansu-bin PATH] [--no-build]
#
# Builds gregor (release) and the librdkafka-based bench tool (bench/, its own
# cargo workspace), then runs bench/suite.py: every scenario against a gregor
# it starts, the peer Tansu 0.6.0 (memory engine; TANSU_BIN or `tansu` on PATH
# or /work/.peers/tansu/bin/tansu) and this machine's limits (iperf3, fio).
# Raw lines go to bench/results/<date>.jsonl; the markdown table to stdout.
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
  (cd bench && nice -n 10 cargo build --release)
fi
for tool in iperf3 fio; do
  command -v "$tool" >/dev/null || echo "[bench] $tool missing (apt-get install $tool): its limit is skipped" >&2
done
exec python3 bench/suite.py "${args[@]+"${args[@]}"}"
