"""Log compaction benchmark: produce and fetch throughput on one topic while
the cleaner compacts another (ratio to the same with the cleaner idle), and
the cleaner's own throughput in MB/s (from its "cleaned log" lines).

    GREGOR_BIN=target/release/gregor python3 bench/compaction.py [--dirty-mb 64]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
BIN = os.environ.get("GREGOR_BIN", str(ROOT / "target" / "release" / "gregor"))
VALUE = os.urandom(200)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(data_dir, log_path):
    port = free_port()
    proc = subprocess.Popen(
        [BIN, "broker", "--data-dir", str(data_dir), "--listeners", f"PLAINTEXT://127.0.0.1:{port}",
         "--admin", f"127.0.0.1:{free_port()}", "--override", "log.cleaner.backoff.ms=200"],
        stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, env=dict(os.environ, GREGOR_LOG="info"))
    bootstrap = f"127.0.0.1:{port}"
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=1)
            return proc, bootstrap
        except Exception:
            time.sleep(0.1)
    raise RuntimeError("broker did not start")


def create(bootstrap, name, config):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 1, 1, config=config)])[name].result(10)


def produce(bootstrap, topic, count, keys):
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": 1,
                         "queue.buffering.max.messages": 1_000_000})
    started = time.time()
    for i in range(count):
        while True:
            try:
                producer.produce(topic, key=b"k%d" % (i % keys), value=VALUE)
                break
            except BufferError:
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush(60)
    return count * len(VALUE) / (time.time() - started) / 1e6


def fetch(bootstrap, topic, count):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"b{time.time()}",
                         "fetch.max.bytes": 52428800})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    seen, started = 0, time.time()
    while seen < count:
        for m in consumer.consume(10000, 1.0):
            if m.error() is None:
                seen += 1
    elapsed = time.time() - started
    consumer.close()
    return seen * len(VALUE) / elapsed / 1e6


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dirty-mb", type=int, default=64)
    parser.add_argument("--messages", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "broker.log"
        proc, bootstrap = start_broker(Path(tmp) / "data", log_path)
        try:
            plain = {"segment.bytes": str(8 << 20)}
            create(bootstrap, "idle", plain)
            produce_idle = produce(bootstrap, "idle", args.messages, 10**9)
            fetch_idle = fetch(bootstrap, "idle", args.messages)

            # A compacted topic full of superseded records; a small last
            # segment rolls so all of it is cleanable.
            create(bootstrap, "dirty", {"cleanup.policy": "compact", "segment.bytes": str(1 << 20),
                                        "min.cleanable.dirty.ratio": "0.5"})
            dirty_messages = args.dirty_mb * (1 << 20) // (len(VALUE) + 40)
            create(bootstrap, "busy", plain)
            produce(bootstrap, "dirty", dirty_messages, 1000)
            roller = Producer({"bootstrap.servers": bootstrap})
            roller.produce("dirty", key=b"roll", value=os.urandom(900_000))
            roller.flush(10)
            time.sleep(0.5)
            produce_busy = produce(bootstrap, "busy", args.messages, 10**9)
            fetch_busy = fetch(bootstrap, "busy", args.messages)
            deadline = time.time() + 600
            while "cleaned log topic=dirty" not in log_path.read_text(errors="replace"):
                if time.time() > deadline:
                    raise RuntimeError("the cleaner did not finish")
                time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait(30)
        lines = [l for l in log_path.read_text(errors="replace").splitlines() if "cleaned log topic=dirty" in l]
        read = sum(int(re.search(r"read_bytes=(\d+)", l).group(1)) for l in lines)
        rates = [float(re.search(r"mb_per_second=([\d.]+)", l).group(1)) for l in lines]
        print(f"binary: {BIN}")
        print(f"produce MB/s idle {produce_idle:.1f}, while cleaning {produce_busy:.1f}, ratio {produce_busy / produce_idle:.2f}")
        print(f"fetch   MB/s idle {fetch_idle:.1f}, while cleaning {fetch_busy:.1f}, ratio {fetch_busy / fetch_idle:.2f}")
        print(f"cleaner: {len(lines)} cleans, {read / 1e6:.1f} MB read, first clean {rates[0]:.1f} MB/s")


if __name__ == "__main__":
    sys.exit(main())
