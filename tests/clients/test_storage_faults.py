"""Failing disks: the broker's log directory on a small filesystem of the
test's own (a size-limited tmpfs), filled until writes fail. Nothing that
was acknowledged may be lost, and nothing may be acknowledged that is not
in the log at the offset given."""
import os
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def small_fs(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(fs, leave_bytes):
    """Fills `fs` up to `leave_bytes` of free space; returns the filler file."""
    filler = fs / "filler"
    free = os.statvfs(fs).f_bavail * os.statvfs(fs).f_frsize
    with open(filler, "wb") as f:
        f.truncate(0)
        chunk = b"\0" * (1 << 20)
        remaining = max(free - leave_bytes, 0)
        while remaining > 0:
            n = min(remaining, len(chunk))
            f.write(chunk[:n])
            remaining -= n
    return filler


def read_all(bootstrap, topic):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "check",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    stored, idle_since = [], time.time()
    while time.time() - idle_since < 3:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        stored.append((msg.offset(), msg.value()))
        idle_since = time.time()
    consumer.close()
    return stored


def test_idempotent_retries_through_a_full_disk_lose_nothing_acknowledged(make_broker, small_fs):
    broker = make_broker(data_dir=small_fs / "data")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("full", 1, 1)])["full"].result(timeout=10)
    filler = fill(small_fs, leave_bytes=256 * 1024)

    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True,
                         "acks": "all", "linger.ms": 5, "message.timeout.ms": 120000,
                         "retry.backoff.ms": 100})
    acked, failed = [], []

    def report(err, msg):
        (failed if err else acked).append((msg.offset(), msg.value()))

    stop = threading.Event()

    def poll():
        while not stop.is_set():
            producer.poll(0.05)

    poller = threading.Thread(target=poll)
    poller.start()
    payload = b"x" * 1000
    for i in range(3000):
        producer.produce("full", value=b"%06d" % i + payload, on_delivery=report)
    # Let the producer run into the full disk and retry for a while.
    deadline = time.time() + 60
    while "append failed" not in broker.output() and time.time() < deadline:
        time.sleep(0.2)
    assert "append failed" in broker.output(), "the disk never filled"
    time.sleep(2)
    filler.unlink()
    stop.set()
    poller.join()
    assert producer.flush(60) == 0
    assert not failed
    assert len(acked) == 3000

    stored = read_all(broker.bootstrap, "full")
    by_offset = dict(stored)
    assert [o for o, _ in stored] == list(range(len(stored))), "offsets have gaps"
    for offset, value in acked:
        assert by_offset.get(offset) == value, f"acknowledged offset {offset} does not hold its message"
    values = [v for _, v in stored]
    assert len(values) == len(set(values)) == 3000, "a message is missing or stored twice"
