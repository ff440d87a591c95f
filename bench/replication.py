#!/usr/bin/env python3
"""What replication costs and how fast it heals (issue 14), in one run on a
three-broker cluster of the real binary behind one `gregor coordinator`:

1. produce 1 KiB records (gregor-bench, librdkafka, one producer, one
   partition): RF=1 against RF=3 with acks=1 and with acks=all,
   interleaved run by run; ratios to RF=1;
2. end-to-end latency (produce -> consume) at a fixed 10 000 msg/s, 1 KiB,
   acks=all, RF=1 and RF=3;
3. leader election after `kill -9` of the partition leader, N trials: time
   until the metadata of a surviving broker names a new leader, and until
   a producer's (confluent-kafka, acks=all) send to the partition is
   acknowledged again;
4. ISR rejoin: a follower stops (controlled shutdown), the others take N GB
   at RF=3, the follower restarts; time until it is back in the ISR, per
   GB behind (beside the same restart with nothing behind).

Kafka's published figures (3 replicas, acks=all) are the anchors, cited in
the markdown; the machine's own limits (iperf3 loopback, fio disk writes)
are measured in the same run, so the ratios can be read against them.

    python3 bench/replication.py [--runs 3] [--messages 500000] [--elections 20]
        [--rejoin-gb 0.5] [--rejoin-trials 3] [--quick] [--no-limits]
        [--note TEXT] [--gregor-bin target/release/gregor] [--results DIR]

Writes the raw lines to <results>/<date>-replication.jsonl and the tables
to <date>-replication.md. A measurement, not a test: nothing here asserts
a time.
"""
import argparse
import datetime
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from suite import (  # noqa: E402
    BENCH_BIN, KIB, ROOT, free_port, log, measure_limits, ratio, run_bench, spread, wait_for_port,
)

GB = 1e9

# Kafka's published figures, the anchors of the ratios.
KREPS_2014 = ("https://engineering.linkedin.com/kafka/"
              "benchmarking-apache-kafka-2-million-writes-second-three-cheap-machines")
CONFLUENT_2020 = "https://www.confluent.io/blog/kafka-fastest-messaging-system/"
KAFKA_SESSION_TIMEOUT = "https://kafka.apache.org/documentation/#brokerconfigs_broker.session.timeout.ms"
KAFKA_PRODUCE = {  # records/s, one producer thread, 100 B records, 6 partitions (Kreps 2014)
    "rf1": 821_557, "rf3_acks1": 786_980, "rf3_acksall": 421_823}
KAFKA_E2E_MS = {"p50": 2.0, "p99": 3.0, "p999": 14.0}  # Kreps 2014
KAFKA_E2E_P99_CONFLUENT_MS = 5.0  # at 200 MB/s, RF=3, acks=all (Confluent 2020)
KAFKA_SESSION_TIMEOUT_S = 9.0  # broker.session.timeout.ms default (KRaft)


class Process:
    """A gregor server process that keeps its ports and data across restarts."""

    def __init__(self, name, workdir, argv):
        self.name, self.workdir, self.argv = name, Path(workdir), argv
        self.port = argv_port(argv)
        self.proc = None

    def start(self):
        out = open(self.workdir / f"{self.name}.log", "ab")
        self.proc = subprocess.Popen(self.argv, stdout=out, stderr=out, env={**os.environ, "GREGOR_LOG": "warn"})
        wait_for_port(self.port, self.proc, timeout=60)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def argv_port(argv):
    for i, arg in enumerate(argv):
        if arg == "--port":
            return int(argv[i + 1])
        if arg == "--listeners":
            return int(argv[i + 1].rsplit(":", 1)[1])
    raise ValueError(f"no port in {argv}")


class Cluster:
    """One coordinator (ZooKeeper's role) and brokers 0..2 on loopback, as
    in Kafka's three-broker benchmarks."""

    def __init__(self, binary, workdir, brokers=3):
        workdir = Path(workdir)
        self.coordinator = Process("coordinator", workdir, [
            binary, "coordinator", "--port", str(free_port()), "--data-dir", str(workdir / "coordinator")])
        self.brokers = {}
        for broker_id in range(brokers):
            port = free_port()
            self.brokers[broker_id] = Process(f"broker{broker_id}", workdir, [
                binary, "broker", "--data-dir", str(workdir / f"broker{broker_id}"),
                "--listeners", f"PLAINTEXT://127.0.0.1:{port}", "--admin", f"127.0.0.1:{free_port()}",
                "--override", f"zookeeper.connect=127.0.0.1:{self.coordinator.port}",
                "--override", f"node.id={broker_id}"])
        self.admins = {}

    def start(self):
        self.coordinator.start()
        for broker in self.brokers.values():
            broker.start()
        return self

    def stop(self):
        for process in [*self.brokers.values(), self.coordinator]:
            process.stop(signal.SIGKILL)

    def bootstrap(self, exclude=()):
        return ",".join(f"127.0.0.1:{b.port}" for i, b in self.brokers.items() if i not in exclude)

    def admin(self, exclude=()):
        """One admin client per set of brokers asked (it reconnects to a
        restarted broker by itself)."""
        key = tuple(sorted(exclude))
        if key not in self.admins:
            self.admins[key] = AdminClient({"bootstrap.servers": self.bootstrap(exclude)})
        return self.admins[key]

    def partition(self, topic, exclude=()):
        """Partition 0 of `topic` as a broker's Metadata shows it (None while unknown)."""
        try:
            metadata = self.admin(exclude).list_topics(topic, timeout=5)
        except Exception:  # noqa: BLE001 - a broker between lives; asked again
            return None
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or 0 not in found.partitions:
            return None
        return found.partitions[0]

    def create_topic(self, topic, replication_factor):
        config = {"min.insync.replicas": "2"} if replication_factor == 3 else {}
        created = self.admin().create_topics([NewTopic(topic, 1, replication_factor, config=config)])
        created[topic].result(timeout=60)
        self.wait_in_sync(topic, replication_factor)

    def delete_topic(self, topic):
        self.admin().delete_topics([topic], operation_timeout=30)[topic].result(timeout=60)

    def wait_in_sync(self, topic, size, exclude=(), timeout=120):
        """Until partition 0 has a leader and an ISR of `size`."""
        return wait_until(lambda: (lambda p: p if p and p.leader >= 0 and len(p.isrs) == size else None)(
            self.partition(topic, exclude)), timeout, f"{topic} ISR of {size}")


def wait_until(condition, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"no {what} after {timeout} s")


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# ------------------------------------------------------------ throughput

PRODUCE_SETUPS = [  # key, replication factor, acks
    ("rf1", 1, "all"), ("rf3_acks1", 3, "1"), ("rf3_acksall", 3, "all")]


def measure_produce(cluster, run, messages, record):
    for key, replication_factor, acks in PRODUCE_SETUPS:
        topic = f"produce-{key}-{run}"
        cluster.create_topic(topic, replication_factor)
        os.sync()  # each run pays only for its own write-back
        line = run_bench(cluster.bootstrap(), key, "produce",
                         ["--topic", topic, "--partitions", "0", "--messages", str(messages),
                          "--size", str(KIB), "--acks", acks])
        record("produce", key, run, line)
        cluster.delete_topic(topic)


def measure_e2e(cluster, run, rate, duration_s, warmup_s, record):
    for key, replication_factor in (("rf1", 1), ("rf3", 3)):
        topic = f"e2e-{key}-{run}"
        cluster.create_topic(topic, replication_factor)
        os.sync()
        line = run_bench(cluster.bootstrap(), key, "e2e",
                         ["--topic", topic, "--partitions", "0", "--rate", str(rate), "--size", str(KIB),
                          "--duration-s", str(duration_s), "--warmup-s", str(warmup_s),
                          "--acks", "all", "--linger-ms", "0"])
        record("e2e", key, run, line)
        cluster.delete_topic(topic)


# -------------------------------------------------------------- election

def measure_election(cluster, topic, trial, record):
    """kill -9 of partition 0's leader; seconds until a surviving broker's
    Metadata names another leader, and until a producer that keeps sending
    (every 20 ms, acks=all) sees a send acknowledged. The killed broker then
    restarts and the trial ends when it is back in the ISR."""
    partition = cluster.wait_in_sync(topic, 3)
    leader = partition.leader
    producer = Producer({"bootstrap.servers": cluster.bootstrap(), "acks": "all", "linger.ms": 0})
    acked = []

    def delivered(error, _message):
        if error is None:
            acked.append(time.perf_counter())
    producer.produce(topic, b"warm-up", partition=0, on_delivery=delivered)
    producer.flush(30)
    acked.clear()

    killed_at = time.perf_counter()
    cluster.brokers[leader].stop(signal.SIGKILL)
    new_leader_at, new_leader, deadline = None, None, time.monotonic() + 120
    while (new_leader_at is None or not acked) and time.monotonic() < deadline:
        producer.produce(topic, b"during-election", partition=0, on_delivery=delivered)
        producer.poll(0)
        if new_leader_at is None:
            seen = cluster.partition(topic, exclude=(leader,))
            if seen and seen.leader not in (-1, leader):
                new_leader_at, new_leader = time.perf_counter(), seen.leader
        time.sleep(0.02)
    first_ack = min(acked) if acked else None
    producer.flush(60)

    restarted_at = time.perf_counter()
    cluster.brokers[leader].start()
    cluster.wait_in_sync(topic, 3)
    line = {"trial": trial, "killed": leader, "new_leader": new_leader,
            "metadata_s": new_leader_at and new_leader_at - killed_at,
            "first_ack_s": first_ack and first_ack - killed_at,
            "restart_to_isr_s": time.perf_counter() - restarted_at}
    record("election", "kill9", trial, line)


# ---------------------------------------------------------------- rejoin

def measure_rejoin(cluster, topic, trial, messages, record):
    """A follower of partition 0 stops (controlled shutdown, so it leaves
    the ISR at once), `messages` x 1 KiB go in at acks=all, the follower
    restarts: seconds from its start until the ISR holds it again."""
    partition = cluster.wait_in_sync(topic, 3)
    follower = [r for r in partition.replicas if r != partition.leader][trial % 2]
    cluster.brokers[follower].stop(signal.SIGTERM)
    wait_until(lambda: (lambda p: p and follower not in p.isrs)(cluster.partition(topic, (follower,))),
               120, f"{topic} ISR without broker {follower}")
    produced = None
    if messages:
        produced = run_bench(cluster.bootstrap(exclude=(follower,)), "rejoin", "produce",
                             ["--topic", topic, "--partitions", "0", "--messages", str(messages),
                              "--size", str(KIB), "--acks", "all"], timeout=1800)
    os.sync()  # the catch-up does not compete with the write-back of the produce
    started = time.perf_counter()
    cluster.brokers[follower].start()
    wait_until(lambda: (lambda p: p and follower in p.isrs)(cluster.partition(topic)),
               3600, f"broker {follower} back in {topic}'s ISR", interval=0.1)
    seconds = time.perf_counter() - started
    behind = messages * KIB
    line = {"trial": trial, "follower": follower, "bytes_behind": behind, "rejoin_s": seconds,
            "s_per_gb": seconds / (behind / GB) if behind else None,
            "catch_up_mb_s": behind / seconds / 1e6 if behind else None,
            "produce_mb_s": produced and produced.get("mb_per_s"),
            "produce_error": produced and produced.get("error")}
    record("rejoin", "behind" if messages else "empty", trial, line)


# ----------------------------------------------------------------- table

def render(samples, limits, args, stamp, environment):
    def values(section, key, pick):
        found = []
        for line in samples.get((section, key), []):
            try:
                value = pick(line)
            except (KeyError, TypeError):
                continue
            if value is not None:
                found.append(value)
        return found

    def cell(section, key, pick, digits):
        shown = spread(values(section, key, pick), digits)
        return shown[1] if shown else "—"

    def median(section, key, pick):
        found = values(section, key, pick)
        return statistics.median(found) if found else None

    def limit(name, unit, digits=0):
        return f"{limits[name]:,.{digits}f} {unit}" if name in limits else "not measured"

    lines = [f"# Replication benchmark {stamp}", "",
             f"`python3 bench/replication.py {shlex.join(args.argv)}`; binary `{args.gregor_bin}` "
             f"(gregor `{environment['gregor_git']}`); three brokers and one `gregor coordinator` on "
             f"loopback, one disk, {environment['nproc']} cores; medians (min–max) of {args.runs} "
             f"interleaved runs. Load average before / after: {environment['loadavg_before'][0]:.2f} / "
             f"{environment['loadavg_after'][0]:.2f}.", ""]
    if args.note:
        lines += [f"**{args.note}**", ""]
    lines += [f"Machine limits (medians): loopback TCP {limit('loopback_mb_s', 'MB/s')} (iperf3); "
              f"disk sequential write {limit('disk_write_mb_s', 'MB/s')}, with fdatasync per MiB "
              f"{limit('disk_write_fdatasync_mb_s', 'MB/s')} (fio); loopback 1 KiB round trip p50 "
              f"{limit('loopback_rtt_1KiB_p50_ms', 'ms', 3)}. Three replicas on one machine write every "
              "byte three times to the same disk and move it twice more over loopback.", ""]

    lines += ["## Produce 1 KiB, one producer (librdkafka), one partition", "",
              f"{args.messages:,} records per run. Kafka's anchor: Kreps 2014 ([LinkedIn]({KREPS_2014})), "
              "three brokers on separate machines, one producer thread, 100-byte records, 6 partitions.", "",
              "| setup | MB/s | records/s | ack p99, ms | / RF=1 | Kafka / RF=1 |", "|---|---|---|---|---|---|"]
    base = median("produce", "rf1", lambda line: line["mb_per_s"])
    titles = {"rf1": "RF=1, acks=all", "rf3_acks1": "RF=3, acks=1", "rf3_acksall": "RF=3, acks=all"}
    for key, _, _ in PRODUCE_SETUPS:
        mb = median("produce", key, lambda line: line["mb_per_s"])
        kafka = KAFKA_PRODUCE[key] / KAFKA_PRODUCE["rf1"]
        lines.append(f"| {titles[key]} | {cell('produce', key, lambda line: line['mb_per_s'], 1)} | "
                     f"{cell('produce', key, lambda line: line['msgs_per_s'], 0)} | "
                     f"{cell('produce', key, lambda line: line['ack_latency']['p99_ms'], 1)} | "
                     f"{ratio(mb, base)} | {kafka:.2f} ({KAFKA_PRODUCE[key]:,} records/s) |")

    lines += ["", f"## End-to-end latency, 1 KiB at {args.rate:,} msg/s, acks=all, linger.ms=0", "",
              f"{args.e2e_s:g} s measured after {args.warmup_s:g} s of warm-up per run; send time to "
              "the consumer's poll, one partition (a consumer sees a record once the high watermark "
              f"passes it, so at RF=3 after the followers fetched it). Kafka's anchors: Kreps 2014 "
              f"p50 {KAFKA_E2E_MS['p50']:g} / p99 {KAFKA_E2E_MS['p99']:g} / p99.9 {KAFKA_E2E_MS['p999']:g} ms "
              f"([LinkedIn]({KREPS_2014})); Confluent 2020 p99 {KAFKA_E2E_P99_CONFLUENT_MS:g} ms at "
              f"200 MB/s, RF=3, acks=all ([Confluent]({CONFLUENT_2020})).", "",
              "| | p50, ms | p99, ms | p99.9, ms | p99 / Kafka's p99 (3 ms) |", "|---|---|---|---|---|"]
    for key, title in (("rf1", "RF=1"), ("rf3", "RF=3")):
        p99 = median("e2e", key, lambda line: line["e2e_latency"]["p99_ms"])
        lines.append(f"| {title} | {cell('e2e', key, lambda line: line['e2e_latency']['p50_ms'], 2)} | "
                     f"{cell('e2e', key, lambda line: line['e2e_latency']['p99_ms'], 2)} | "
                     f"{cell('e2e', key, lambda line: line['e2e_latency']['p999_ms'], 2)} | "
                     f"{ratio(p99, KAFKA_E2E_MS['p99'])} |")

    elections = samples.get(("election", "kill9"), [])
    lines += ["", f"## Leader election after kill -9 of the leader ({len(elections)} trials)", "",
              "Partition 0 of an RF=3 topic (min.insync.replicas=2); time from SIGKILL until a surviving "
              "broker's Metadata names another leader, and until a confluent-kafka producer sending every "
              "20 ms (acks=all) has a send acknowledged. A killed process says nothing: the coordinator "
              "fences it after its 9 s session timeout, Kafka's `broker.session.timeout.ms` default "
              f"([Kafka docs]({KAFKA_SESSION_TIMEOUT})), so that timeout is Kafka's anchor.", "",
              "| | p50, s | max, s | p50 / Kafka's 9 s |", "|---|---|---|---|"]
    for key, title in (("metadata_s", "new leader in Metadata"), ("first_ack_s", "first acknowledged send")):
        found = [line[key] for line in elections if line.get(key) is not None]
        missing = len(elections) - len(found)
        if found:
            p50 = percentile(found, 50)
            lines.append(f"| {title}{f' ({missing} trials never)' if missing else ''} | {p50:.2f} | "
                         f"{max(found):.2f} | {p50 / KAFKA_SESSION_TIMEOUT_S:.2f} |")
        else:
            lines.append(f"| {title} | — | — | — |")
    restarts = [line["restart_to_isr_s"] for line in elections]
    if restarts:
        lines.append(f"\nThe killed broker, restarted, was back in the ISR after {percentile(restarts, 50):.2f} s "
                     f"(p50; max {max(restarts):.2f} s).")

    behind = samples.get(("rejoin", "behind"), [])
    empty = samples.get(("rejoin", "empty"), [])
    lines += ["", f"## ISR rejoin after {args.rejoin_gb:g} GB behind ({len(behind)} trials)", "",
              "A follower of an RF=3 partition stops (controlled shutdown), the leader takes "
              f"{args.rejoin_gb:g} GB (1 KiB records, acks=all, two replicas in sync), the follower "
              "restarts; time from its start until Metadata shows it in the ISR again. Kept to "
              f"{args.rejoin_gb:g} GB so a run stays short. Kafka publishes no such figure: the anchor "
              "is the machine's disk write rate.", "",
              "| | seconds | s per GB | catch-up MB/s | / disk write MB/s |", "|---|---|---|---|---|"]
    disk = limits.get("disk_write_mb_s")
    for title, lines_of in (("nothing behind", empty), (f"{args.rejoin_gb:g} GB behind", behind)):
        seconds = [line["rejoin_s"] for line in lines_of]
        if not seconds:
            continue
        per_gb = [line["s_per_gb"] for line in lines_of if line.get("s_per_gb")]
        rate = [line["catch_up_mb_s"] for line in lines_of if line.get("catch_up_mb_s")]
        rate_shown = spread(rate, 1)
        lines.append(f"| {title} | {spread(seconds, 2)[1]} | {spread(per_gb, 1)[1] if per_gb else '—'} | "
                     f"{rate_shown[1] if rate_shown else '—'} | "
                     f"{ratio(rate_shown and rate_shown[0], disk) if rate_shown else '—'} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ main

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="interleaved produce and e2e runs")
    parser.add_argument("--messages", type=int, default=500_000, help="1 KiB records per produce run")
    parser.add_argument("--rate", type=int, default=10_000, help="e2e messages per second")
    parser.add_argument("--e2e-s", type=float, default=10.0, help="e2e seconds measured per run")
    parser.add_argument("--warmup-s", type=float, default=2.0, help="e2e warm-up seconds per run")
    parser.add_argument("--elections", type=int, default=20, help="kill -9 trials")
    parser.add_argument("--rejoin-gb", type=float, default=0.5, help="GB a follower falls behind")
    parser.add_argument("--rejoin-trials", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to see that it runs")
    parser.add_argument("--no-limits", action="store_true", help="skip iperf3/fio")
    parser.add_argument("--note", help="a line for the markdown (e.g. how loaded the machine was)")
    parser.add_argument("--gregor-bin", default=str(ROOT / "target" / "release" / "gregor"))
    parser.add_argument("--results", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args()
    args.argv = sys.argv[1:]
    if args.quick:
        args.runs, args.messages, args.e2e_s, args.warmup_s = 1, 5_000, 0.5, 0.2
        args.rate, args.elections, args.rejoin_gb, args.rejoin_trials = 1_000, min(args.elections, 1), 0.005, 1
    args.gregor_bin = str(Path(args.gregor_bin).resolve())
    if not BENCH_BIN.exists():
        sys.exit(f"{BENCH_BIN} is not built: (cd bench && cargo build --release)")

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d-%H%M%S")
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    raw = open(results / f"{stamp}-replication.jsonl", "w")
    samples = {}

    def out(line):
        raw.write(json.dumps(line) + "\n")
        raw.flush()

    def record(section, key, run, line):
        line = {"kind": section, "key": key, "run": run, **line}
        samples.setdefault((section, key), []).append(line)
        out(line)
        log(f"{section} {key} {run}: " + json.dumps(
            {k: v for k, v in line.items() if k in (
                "mb_per_s", "msgs_per_s", "e2e_latency", "metadata_s", "first_ack_s", "restart_to_isr_s",
                "rejoin_s", "s_per_gb", "error")}))

    environment = {"loadavg_before": os.getloadavg(), "nproc": os.cpu_count(), "kernel": os.uname().release,
                   "gregor_bin": args.gregor_bin,
                   "gregor_git": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                                capture_output=True, text=True).stdout.strip()}
    with tempfile.TemporaryDirectory(prefix="gregor-replication-bench-", dir=ROOT / "target") as tmp:
        limits = {}
        if not args.no_limits:
            limits, _ = measure_limits(tmp, args.quick, 1 if args.quick else 3, lambda line: out(line))
        cluster = Cluster(args.gregor_bin, tmp).start()
        try:
            for run in range(args.runs):
                measure_produce(cluster, run, args.messages, record)
                measure_e2e(cluster, run, args.rate, args.e2e_s, args.warmup_s, record)
            cluster.create_topic("elect", 3)
            for trial in range(args.elections):
                measure_election(cluster, "elect", trial, record)
            cluster.create_topic("rejoin", 3)
            measure_rejoin(cluster, "rejoin", 0, 0, record)
            rejoin_messages = int(args.rejoin_gb * GB / KIB)
            for trial in range(args.rejoin_trials):
                measure_rejoin(cluster, "rejoin", trial, rejoin_messages, record)
        finally:
            cluster.stop()
    environment["loadavg_after"] = os.getloadavg()
    out({"kind": "environment", **environment})

    table = render(samples, limits, args, stamp, environment)
    (results / f"{stamp}-replication.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
