"""Durability: acknowledged messages survive kill -9, a corrupt tail is
truncated on recovery, and retention deletes old segments."""
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

PRODUCER = textwrap.dedent("""
    import sys
    from kafka import KafkaProducer
    producer = KafkaProducer(bootstrap_servers=sys.argv[1], acks=1, retries=0, linger_ms=0)
    i = 0
    while True:
        meta = producer.send("durable", value=f"msg-{i}".encode()).get(timeout=10)
        print(meta.offset, i, flush=True)
        i += 1
""")


def read_partition(bootstrap, topic, partition=0):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=3000,
                             auto_offset_reset="earliest")
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    messages = [(m.offset, m.value) for m in consumer]
    consumer.close()
    return messages


@pytest.mark.parametrize("flush_every_message", [True, False])
def test_acknowledged_messages_survive_kill_9(make_broker, flush_every_message):
    extra = ["--override", "log.flush.interval.messages=1"] if flush_every_message else []
    broker = make_broker(extra=extra)
    producer = subprocess.Popen([sys.executable, "-c", PRODUCER, broker.bootstrap],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    acked = []
    for line in producer.stdout:
        offset, i = map(int, line.split())
        acked.append((offset, f"msg-{i}".encode()))
        if len(acked) == 300:
            break
    broker.kill9()
    producer.kill()
    for line in producer.stdout:
        offset, i = map(int, line.split())
        acked.append((offset, f"msg-{i}".encode()))
    producer.wait()

    broker.start()
    stored = read_partition(broker.bootstrap, "durable")
    assert set(acked) <= set(stored)
    assert [o for o, _ in stored] == list(range(len(stored)))

    # Offsets continue without a gap or a duplicate.
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    meta = p.send("durable", value=b"after restart").get(timeout=10)
    p.close()
    assert meta.offset == len(stored)


def test_corrupt_tail_is_truncated_on_recovery(make_broker):
    broker = make_broker()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
    for i in range(20):
        producer.send("torn", value=f"record-{i}".encode()).get(timeout=10)
    producer.close()
    broker.kill9()

    segment = sorted(Path(broker.data_dir, "torn-0").glob("*.log"))[-1]
    data = bytearray(segment.read_bytes())
    data[-3:] = b"\xff\xff\xff"  # damage the last batch (one record per batch)
    segment.write_bytes(bytes(data))

    broker.start()
    stored = read_partition(broker.bootstrap, "torn")
    assert [v for _, v in stored] == [f"record-{i}".encode() for i in range(19)]
    p = KafkaProducer(bootstrap_servers=broker.bootstrap)
    assert p.send("torn", value=b"next").get(timeout=10).offset == 19
    p.close()


def test_clean_restart_keeps_everything(make_broker):
    broker = make_broker()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(100):
        producer.send("clean", value=str(i).encode())
    producer.flush()
    producer.close()
    assert broker.stop() == 0
    assert "broker stopped cleanly" in broker.output()
    broker.start()
    assert [v for _, v in read_partition(broker.bootstrap, "clean")] == [
        str(i).encode() for i in range(100)
    ]


def test_retention_deletes_old_segments_and_moves_earliest_offset(make_broker):
    broker = make_broker(extra=["--override", "log.retention.check.interval.ms=300"])
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("short", 1, 1, topic_configs={
        "retention.ms": "60000", "segment.bytes": "2048"})])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, linger_ms=0)
    old = int(time.time() * 1000) - 3_600_000
    for i in range(60):
        producer.send("short", value=b"x" * 100, timestamp_ms=old).get(timeout=10)
    now = int(time.time() * 1000)
    for i in range(5):
        producer.send("short", value=b"fresh", timestamp_ms=now).get(timeout=10)
    producer.close()

    # Every segment holding only old records goes. The one holding the last
    # old records may hold fresh ones too and stay: where it starts depends
    # on when a retention pass rolled the expired active segment, and a
    # 2048-byte segment holds at most 12 of these one-record batches.
    lowest = 60 - 12
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    tp = TopicPartition("short", 0)
    deadline = time.time() + 60
    earliest = 0
    while time.time() < deadline:
        earliest = consumer.beginning_offsets([tp])[tp]
        if earliest >= lowest:
            break
        time.sleep(0.3)
    assert consumer.end_offsets([tp])[tp] == 65
    consumer.close()
    assert lowest <= earliest <= 60
    assert len(list(Path(broker.data_dir, "short-0").glob("*.log"))) <= 3


def test_sigterm_with_produces_in_flight_closes_cleanly_and_keeps_every_acknowledged(make_broker):
    from confluent_kafka import Producer

    broker = make_broker()
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 1,
                         "message.timeout.ms": 5000, "retries": 0})
    acked = []

    def report(err, msg):
        if err is None:
            acked.append((msg.offset(), msg.value()))

    deadline = time.time() + 1.0
    i = 0
    while time.time() < deadline:
        try:
            producer.produce("inflight", value=b"m-%d" % i, on_delivery=report)
            i += 1
        except BufferError:
            producer.poll(0.01)
        producer.poll(0)
    assert broker.stop() == 0        # SIGTERM while the producer keeps sending
    producer.flush(10)
    assert acked, "nothing was acknowledged before the stop"
    # The stop was clean: the next start trusts the log without a scan.
    assert (broker.data_dir / "inflight-0" / ".clean_shutdown").exists()

    broker.start()
    stored = read_partition(broker.bootstrap, "inflight")
    assert [o for o, _ in stored] == list(range(len(stored)))
    assert set(acked) <= set(stored)
    values = [v for _, v in stored]
    assert len(values) == len(set(values)), "a message is stored twice"
