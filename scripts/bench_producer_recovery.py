#!/usr/bin/env python3
"""How long a broker takes to recover a large partition's producer state at
start-up, with and without producer snapshots (a measurement, not a test:
nothing here asserts a time).

    scripts/bench_producer_recovery.py [--bin target/debug/gregor] [--records 2000000]

Fills one partition with `--records` records of 100 bytes from 8
idempotent confluent-kafka producers (segment.bytes 64 MiB), stops the
broker cleanly, then restarts it three ways and reads the broker's
"recovered producer state" line (elapsed_ms, where replay started):
  clean      the shutdown snapshot at the log end: nothing replayed;
  kill -9    the last roll's snapshot (the shutdown one removed), then
             the log after it, after segment recovery;
  none       every snapshot deleted: the whole log replayed.
Prints one JSON line."""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

TOPIC = "recovery"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, binary, data):
        self.binary, self.data = binary, Path(data)
        self.port, self.admin = free_port(), free_port()
        self.log_path = self.data.parent / "broker.log"
        self.proc = None

    def start(self):
        self.log_path.write_text("")
        log = open(self.log_path, "ab")
        args = [self.binary, "broker", "--data-dir", str(self.data),
                "--listeners", f"PLAINTEXT://127.0.0.1:{self.port}",
                "--admin", f"127.0.0.1:{self.admin}"]
        self.proc = subprocess.Popen(args, env=dict(os.environ, GREGOR_LOG="info"),
                                     stdout=log, stderr=log)
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise SystemExit(f"broker exited with {self.proc.returncode}")
                time.sleep(0.02)

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        self.proc.wait(timeout=600)

    def recovered(self):
        """(elapsed_ms, replayed_from, end) of the partition's recovery."""
        deadline = time.time() + 600
        pattern = re.compile(rf"{TOPIC}-0.*replayed_from=(\d+) end=(\d+) elapsed_ms=(\d+)")
        while time.time() < deadline:
            text = re.sub(r"\x1b\[[0-9;]*m", "", self.log_path.read_text(errors="replace"))
            for line in text.splitlines():
                if "recovered producer state" in line and (m := pattern.search(line)):
                    return {"elapsed_ms": int(m[3]), "replayed_from": int(m[1]),
                            "end": int(m[2])}
            time.sleep(0.1)
        raise SystemExit("no recovery line in the broker log")


def fill(bootstrap, records):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    config = {"segment.bytes": str(64 << 20)}
    admin.create_topics([NewTopic(TOPIC, 1, 1, config=config)])[TOPIC].result(30)
    producers = [Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                           "linger.ms": 20, "batch.size": 1 << 20}) for _ in range(8)]
    value = b"v" * 100
    for i in range(records):
        while True:
            try:
                producers[i % 8].produce(TOPIC, value, partition=0)
                break
            except BufferError:
                producers[i % 8].poll(0.05)
        if i % 10000 == 0:
            producers[i % 8].poll(0)
    for producer in producers:
        assert producer.flush(600) == 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", default="target/debug/gregor")
    parser.add_argument("--records", type=int, default=2_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(args.bin, Path(tmp) / "data")
        broker.start()
        started = time.time()
        fill(f"127.0.0.1:{broker.port}", args.records)
        fill_s = time.time() - started
        broker.stop()
        partition = broker.data / f"{TOPIC}-0"
        size = sum(p.stat().st_size for p in partition.glob("*.log"))
        result = {"records": args.records, "log_bytes": size, "fill_s": round(fill_s, 1)}

        broker.start()
        result["clean"] = broker.recovered()
        broker.stop(signal.SIGKILL)
        # A crash before any shutdown: the last snapshot is the last roll's.
        max(partition.glob("*.snapshot")).unlink()
        broker.start()
        result["kill_9"] = broker.recovered()
        broker.stop()
        for snapshot in partition.glob("*.snapshot"):
            snapshot.unlink()
        broker.start()
        result["none"] = broker.recovered()
        broker.stop()
        print(json.dumps(result))


if __name__ == "__main__":
    main()
