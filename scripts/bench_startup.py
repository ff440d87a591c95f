#!/usr/bin/env python3
"""Start-up time to first accepted connection, and idle RSS, of the gregor
broker (a measurement, not a test: nothing here asserts a time).

    scripts/bench_startup.py [--bin target/release/gregor] [--runs 7]

Each run starts the broker on a fresh data directory, connects in a tight
loop until the listener accepts, and reads VmRSS from /proc after the
broker has idled for two seconds. Prints one JSON line with medians and
spreads."""
import argparse
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def one_run(binary):
    port, admin = free_port(), free_port()
    with tempfile.TemporaryDirectory() as data:
        args = [binary, "broker", "--data-dir", data,
                "--listeners", f"PLAINTEXT://127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}"]
        env = dict(os.environ, GREGOR_LOG="warn")
        start = time.perf_counter()
        proc = subprocess.Popen(args, env=env, stderr=subprocess.DEVNULL)
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise SystemExit(f"broker exited with {proc.returncode}")
        startup_ms = (time.perf_counter() - start) * 1000
        time.sleep(2)
        rss = rss_kib(proc.pid)
        proc.terminate()
        proc.wait(timeout=10)
    return startup_ms, rss


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="target/release/gregor")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    results = [one_run(args.bin) for _ in range(args.runs)]
    startups = [r[0] for r in results]
    rss = [r[1] / 1024 for r in results]
    print(json.dumps({
        "binary": args.bin,
        "binary_mb": round(os.path.getsize(args.bin) / 1e6, 1),
        "runs": args.runs,
        "startup_ms_median": round(statistics.median(startups), 2),
        "startup_ms_min": round(min(startups), 2),
        "startup_ms_max": round(max(startups), 2),
        "idle_rss_mb_median": round(statistics.median(rss), 1),
        "idle_rss_mb_max": round(max(rss), 1),
    }))


if __name__ == "__main__":
    main()
