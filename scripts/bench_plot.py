#!/usr/bin/env python3
"""Plot one benchmark suite's raw lines (bench/results/<date>.jsonl from
scripts/bench.sh): throughput per scenario next to the machine's limits, and
end-to-end latency percentiles, gregor (and its static musl build) beside
Tansu. Bars are medians,
whiskers the min-max over runs.

    scripts/bench_plot.py bench/results/<date>.jsonl [-o docs/benchmarks.png]

Needs matplotlib (Debian: python3-matplotlib)."""
import argparse
import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

THROUGHPUT = [
    ("produce_100B_acks1", "produce 100 B\nacks=1"),
    ("produce_1KiB_acksall", "produce 1 KiB\nacks=all"),
    ("produce_1KiB_acksall_durable", "produce 1 KiB\nflush each msg"),
    ("consume_1KiB", "consume 1 KiB"),
]
LATENCY = [
    ("e2e_1KiB_10k_linger0", "1 KiB 10k/s\nlinger 0"),
    ("e2e_1KiB_10k_default", "1 KiB 10k/s\ndefault"),
    ("e2e_100B_50k", "100 B\n50k/s"),
]
PERCENTILES = [("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9"), ("max_ms", "max")]
COLORS = {"gregor": "#1f77b4", "gregor-static": "#2ca02c", "tansu": "#ff7f0e"}


def load(path):
    runs, limits = {}, {}
    for raw in Path(path).read_text().splitlines():
        line = json.loads(raw)
        if line.get("kind") == "run" and "error" not in line:
            runs.setdefault((line["scenario"], line["target"]), []).append(line)
        elif line.get("kind") == "limit":
            limits[line["name"]] = statistics.median(line["values"])
    return runs, limits


def median_and_error(values):
    median = statistics.median(values)
    return median, [[median - min(values)], [max(values) - median]]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("jsonl")
    parser.add_argument("-o", "--output", default="docs/benchmarks.png")
    args = parser.parse_args()
    runs, limits = load(args.jsonl)
    targets = [t for t in COLORS if any(k[1] == t for k in runs)]

    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5))
    width = 0.8 / max(len(targets), 1)
    for i, target in enumerate(targets):
        for x, (key, _) in enumerate(THROUGHPUT):
            values = [line["mb_per_s"] for line in runs.get((key, target), [])]
            if values:
                median, error = median_and_error(values)
                left.bar(x + i * width, median, width, yerr=error, capsize=3, color=COLORS[target],
                         label=target if x == 0 else None)
    for name, label, style in [("loopback_mb_s", "loopback TCP (iperf3)", "--"),
                               ("disk_write_mb_s", "page-cache write (fio)", ":"),
                               ("disk_write_fdatasync_mb_s", "write + fdatasync/MiB (fio)", "-.")]:
        if name in limits:
            left.axhline(limits[name], linestyle=style, color="grey", linewidth=1, label=label)
    left.set_xticks([x + width * (len(targets) - 1) / 2 for x in range(len(THROUGHPUT))],
                    [title for _, title in THROUGHPUT])
    left.set_ylabel("MB/s (payload)")
    left.set_title("Throughput, median and min–max of runs")
    left.legend(fontsize=8)

    groups = [(key, title, target) for key, title in LATENCY for target in targets]
    width = 0.8 / len(PERCENTILES)
    for p, (field, label) in enumerate(PERCENTILES):
        for x, (key, _, target) in enumerate(groups):
            values = [line["e2e_latency"][field] for line in runs.get((key, target), [])]
            if values:
                median, error = median_and_error(values)
                right.bar(x + p * width, median, width, yerr=error, capsize=2,
                          color=COLORS[target], alpha=0.35 + 0.65 * (p + 1) / len(PERCENTILES),
                          label=label if x == 0 else None)
    right.set_yscale("log")
    right.set_xticks([x + 0.3 for x in range(len(groups))],
                     [f"{title}\n{target}" for _, title, target in groups], fontsize=7)
    right.set_ylabel("end-to-end latency (ms, log)")
    right.set_title("End-to-end latency: p50, p99, p99.9, max")
    right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(args.output, dpi=110)
    print(args.output)


if __name__ == "__main__":
    main()
