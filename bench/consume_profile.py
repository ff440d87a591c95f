#!/usr/bin/env python3
"""One broker binary, profiled while it serves consumers: fills a topic
with 500 000 × 1 KiB (acks=all), reads it once to warm the page cache, then
reads it three times under `perf record -g` and prints the three MB/s and
the broker's CPU seconds per GB. Run it for two binaries one after the other
to compare them (the README's consume A/B):

    python3 bench/consume_profile.py target/release/gregor /tmp/now.perf
    python3 bench/consume_profile.py /path/to/old/gregor /tmp/before.perf
    perf report -i /tmp/now.perf --no-children --sort symbol
"""
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import suite  # noqa: E402

MESSAGES = 500_000


def main(binary, perf_out):
    broker = suite.gregor_broker(binary, tempfile.mkdtemp(prefix="gregor-consume-")).start()
    try:
        suite.run_bench(broker.bootstrap, "fill", "produce",
                        ["--topic", "t", "--messages", str(MESSAGES), "--size", "1024", "--acks", "all"])
        suite.run_bench(broker.bootstrap, "warm", "consume", ["--topic", "t", "--messages", str(MESSAGES)])
        perf = subprocess.Popen(["perf", "record", "-F", "2999", "-g", "-o", perf_out,
                                 "-p", str(broker.proc.pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        cpu_before = suite.cpu_seconds(broker.proc.pid)
        rates = [suite.run_bench(broker.bootstrap, "read", "consume",
                                 ["--topic", "t", "--messages", str(MESSAGES)]).get("mb_per_s")
                 for _ in range(3)]
        cpu = suite.cpu_seconds(broker.proc.pid) - cpu_before
        perf.send_signal(signal.SIGINT)
        perf.wait()
        gigabytes = 3 * MESSAGES * 1024 / 1e9
        print(f"{binary}: MB/s {[round(r) for r in rates]}, broker CPU s per GB {cpu / gigabytes:.2f}")
    finally:
        broker.stop()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
