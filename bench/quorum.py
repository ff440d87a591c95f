#!/usr/bin/env python3
"""What the replicated coordinator costs (issue 12): metadata changes per
second through a three-member quorum against the single node's embedded
coordinator, and a broker's produce and consume behind the quorum as ratios
to the same broker on its own, measured in one run, interleaved run by run.

    python3 bench/quorum.py [--runs 3] [--topics 200] [--quick]
        [--gregor-bin target/release/gregor]

The quorum is three `gregor coordinator` processes in ZooKeeper's shape on
loopback (server.N lines, one disk): every metadata change is a raft entry
fsynced by a majority before it is applied, so the machine's fdatasync rate
(fio, printed beside) bounds it. Produce and consume go through the librdkafka
bench tool (bench/, built by scripts/bench.sh). Writes the raw lines to
bench/results/<date>-quorum.jsonl and the table to <date>-quorum.md.
A measurement, not a test: nothing here asserts a time.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite import (  # noqa: E402
    KIB, ROOT, free_port, gregor_broker, log, ratio, run_bench, spread, wait_for_port,
)

RESULTS = ROOT / "bench" / "results"


class Quorum:
    """Three coordinators in ZooKeeper's shape on loopback."""

    def __init__(self, binary, workdir):
        self.binary = binary
        self.workdir = Path(workdir)
        self.ports = {n: (free_port(), free_port(), free_port()) for n in (1, 2, 3)}
        self.procs = []

    @property
    def connect(self):
        return ",".join(f"127.0.0.1:{client}" for client, _, _ in self.ports.values())

    def start(self):
        for n, (client, _, _) in self.ports.items():
            data = self.workdir / f"zk{n}"
            data.mkdir(parents=True, exist_ok=True)
            (data / "myid").write_text(f"{n}\n")
            lines = [f"dataDir={data}", f"clientPort={client}"]
            lines += [f"server.{m}=127.0.0.1:{peer}:{election};{c}"
                      for m, (c, peer, election) in sorted(self.ports.items())]
            config = self.workdir / f"zk{n}.properties"
            config.write_text("\n".join(lines) + "\n")
            out = open(self.workdir / f"zk{n}.log", "ab")
            proc = subprocess.Popen([self.binary, "coordinator", config], stdout=out, stderr=out,
                                    env={"GREGOR_LOG": "warn"})
            self.procs.append(proc)
        for proc, (client, _, _) in zip(self.procs, self.ports.values()):
            wait_for_port(client, proc)
        return self

    def stop(self):
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs = []


def start_target(kind, binary, workdir):
    """A broker on its own ("single") or behind a fresh quorum ("quorum")."""
    if kind == "single":
        return None, gregor_broker(binary, workdir, name="single").start()
    quorum = Quorum(binary, Path(workdir) / "quorum").start()
    broker = gregor_broker(binary, workdir, name="behind-quorum",
                           overrides=[f"zookeeper.connect={quorum.connect}"]).start()
    return quorum, broker


def wait_until_ready(bootstrap, timeout=60):
    """Until the broker answers a topic creation (registered, unfenced)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            admin.create_topics([NewTopic("warm-up", 1, 1)])["warm-up"].result(timeout=10)
            return
        except Exception as error:  # noqa: BLE001 - retried until the deadline
            last = error
            time.sleep(0.2)
    raise RuntimeError(f"{bootstrap} never created a topic: {last}")


def create_topics(bootstrap, count, concurrency, prefix):
    """`count` one-partition topics, `concurrency` requests in flight, each
    request one topic: (creations per second, per-creation latencies in ms)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    latencies = []

    def create(i):
        name = f"{prefix}-{i}"
        started = time.perf_counter()
        admin.create_topics([NewTopic(name, 1, 1)], operation_timeout=30)[name].result(timeout=60)
        return (time.perf_counter() - started) * 1000

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        latencies = list(pool.map(create, range(count)))
    return count / (time.perf_counter() - started), latencies


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def fdatasync_per_s(directory, writes=2000):
    """4 KiB writes each followed by fdatasync: the rate at which this disk
    makes one small record durable, the bound of a raft entry's commit."""
    done = subprocess.run(
        ["fio", "--name=fsync-rate", f"--directory={directory}", "--rw=write", "--bs=4k",
         f"--size={writes * 4}k", "--ioengine=psync", "--fdatasync=1", "--output-format=json"],
        capture_output=True, text=True, check=True)
    return json.loads(done.stdout)["jobs"][0]["write"]["iops"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--topics", type=int, default=200)
    parser.add_argument("--gregor-bin", default=str(ROOT / "target" / "release" / "gregor"))
    parser.add_argument("--quick", action="store_true", help="seconds, to see that it runs")
    args = parser.parse_args()
    # Brokers run in their own work directories.
    args.gregor_bin = str(Path(args.gregor_bin).resolve())
    topics = 20 if args.quick else args.topics
    messages = 5_000 if args.quick else 300_000
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d-%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    raw = open(RESULTS / f"{stamp}-quorum.jsonl", "w")
    samples = {}

    def record(kind, key, value):
        samples.setdefault((kind, key), []).append(value)
        raw.write(json.dumps({"target": kind, "key": key, "value": value}) + "\n")
        raw.flush()

    with tempfile.TemporaryDirectory(prefix="gregor-quorum-bench-", dir=ROOT / "target") as tmp:
        fsyncs = fdatasync_per_s(tmp)
        for run in range(args.runs):
            for kind in ("single", "quorum"):
                workdir = Path(tmp) / f"{kind}-{run}"
                workdir.mkdir()
                quorum, broker = start_target(kind, args.gregor_bin, workdir)
                try:
                    wait_until_ready(broker.bootstrap)
                    for concurrency in (1, 16):
                        rate, latencies = create_topics(broker.bootstrap, topics, concurrency,
                                                        f"t{concurrency}")
                        record(kind, f"creates_c{concurrency}", rate)
                        record(kind, f"create_p50_c{concurrency}", percentile(latencies, 50))
                        record(kind, f"create_p99_c{concurrency}", percentile(latencies, 99))
                    os.sync()  # each run pays only for its own write-back
                    produced = run_bench(broker.bootstrap, kind, "produce",
                                         ["--topic", "bench", "--messages", str(messages),
                                          "--size", str(KIB), "--acks", "all"])
                    record(kind, "produce_mb_s", produced.get("mb_per_s"))
                    consumed = run_bench(broker.bootstrap, kind, "consume",
                                         ["--topic", "bench", "--messages", str(messages)])
                    record(kind, "consume_mb_s", consumed.get("mb_per_s"))
                    log(f"run {run} {kind}: {json.dumps({k[1]: v[-1] for k, v in samples.items() if k[0] == kind})}")
                finally:
                    broker.stop()
                    if quorum:
                        quorum.stop()

    rows = [
        ("creates_c1", "topic creations/s, one request at a time", 1),
        ("create_p50_c1", "creation latency p50, ms (one at a time)", 2),
        ("create_p99_c1", "creation latency p99, ms (one at a time)", 2),
        ("creates_c16", "topic creations/s, 16 requests in flight", 1),
        ("create_p50_c16", "creation latency p50, ms (16 in flight)", 2),
        ("produce_mb_s", "produce 1 KiB acks=all, MB/s", 1),
        ("consume_mb_s", "consume 1 KiB, MB/s", 1),
    ]
    lines = [f"# Quorum benchmark {stamp}", "",
             f"`python3 bench/quorum.py --runs {args.runs} --topics {topics}`"
             f"{' --quick' if args.quick else ''}; binary `{args.gregor_bin}`; medians (min–max) of "
             f"{args.runs} interleaved runs. Machine limit: {fsyncs:,.0f} fdatasync/s (fio, 4 KiB).", "",
             "| | single node | 3-member quorum | quorum / single |", "|---|---|---|---|"]
    for key, title, digits in rows:
        single = spread([v for v in samples.get(("single", key), []) if v is not None], digits)
        quorum = spread([v for v in samples.get(("quorum", key), []) if v is not None], digits)
        lines.append(f"| {title} | {single[1] if single else '—'} | {quorum[1] if quorum else '—'} | "
                     f"{ratio(quorum and quorum[0], single and single[0])} |")
    table = "\n".join(lines) + "\n"
    (RESULTS / f"{stamp}-quorum.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
