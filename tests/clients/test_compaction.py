"""Log compaction: the cleaner keeps the latest record per key with its
offset, drops tombstones after delete.retention.ms, survives kill -9 mid
clean, and produce to a compacted topic refuses records without a key
(KIP-467 record errors)."""
import os
import random
import socket
import struct
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer
from confluent_kafka import TopicPartition as ConfluentPartition
from confluent_kafka.admin import AdminClient, NewTopic as ConfluentTopic
from kafka import KafkaProducer
from kafka.errors import InvalidRecordError
from kafka.record.default_records import DefaultRecordBatchBuilder

from conftest import read_response, request

FAST_CLEANER = ["--override", "log.cleaner.backoff.ms=100"]
COMPACTED = {
    "cleanup.policy": "compact",
    "segment.bytes": "2048",
    "segment.ms": "600000",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "4000",
}
# A value bigger than segment.bytes: it rolls the segment before it and
# sits alone in the active one, so everything before it can be cleaned.
# Random, so that it stays that big compressed.
FILLER = os.urandom(3000)


def create_topic(bootstrap, name, config):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([ConfluentTopic(name, 1, 1, config=config)])[name].result(10)


def read_all(bootstrap, topic):
    """Every record of partition 0 as (offset, key, value), by a new consumer."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g{random.random()}",
                         "enable.auto.commit": False})
    high = consumer.get_watermark_offsets(ConfluentPartition(topic, 0), timeout=10)[1]
    consumer.assign([ConfluentPartition(topic, 0, OFFSET_BEGINNING)])
    records = []
    deadline = time.time() + 10
    while time.time() < deadline:
        m = consumer.poll(0.5)
        if m is None:
            if records and records[-1][0] >= high - 1:
                break
            continue
        assert m.error() is None, m.error()
        records.append((m.offset(), m.key(), m.value()))
        if m.offset() >= high - 1:
            break
    consumer.close()
    return records


def log_start_offset(bootstrap, topic):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    low = consumer.get_watermark_offsets(ConfluentPartition(topic, 0), timeout=10)[0]
    consumer.close()
    return low


def produce_confluent(bootstrap, topic, messages):
    """Produces (key, value) pairs in order; returns their offsets."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.num.messages": 7})
    offsets = [None] * len(messages)

    def report(i):
        def done(err, msg):
            assert err is None, err
            offsets[i] = msg.offset()
        return done

    for i, (key, value) in enumerate(messages):
        producer.produce(topic, key=key, value=value, on_delivery=report(i))
        producer.poll(0)
    producer.flush(10)
    return offsets


def produce_kafka_python(bootstrap, topic, messages):
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, batch_size=500,
                             compression_type="gzip")
    futures = [producer.send(topic, key=k, value=v) for k, v in messages]
    offsets = [f.get(timeout=10).offset for f in futures]
    producer.close()
    return offsets


def latest_per_key(messages, offsets):
    latest = {}
    for (key, value), offset in zip(messages, offsets):
        latest[key] = (offset, key, value)
    return latest


def wait_for(condition, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.parametrize("produce", [produce_confluent, produce_kafka_python])
def test_a_new_consumer_reads_the_latest_value_per_key_at_its_offset_and_tombstones_go(
        make_broker, produce):
    broker = make_broker(extra=FAST_CLEANER)
    topic = "compacted"
    create_topic(broker.bootstrap, topic, COMPACTED)
    keys = [f"key-{k}".encode() for k in range(20)]
    updates = [(keys[i % 20], f"value-{i}".encode()) for i in range(600)]
    tombstones = [(k, None) for k in keys[:5]]
    messages = updates + tombstones + [(b"filler", FILLER)]
    # The filler goes alone, in its own batch.
    offsets = produce(broker.bootstrap, topic, messages[:-1])
    offsets += produce(broker.bootstrap, topic, messages[-1:])
    latest = latest_per_key(messages, offsets)
    everything = {(o, k, v) for (k, v), o in zip(messages, offsets)}

    def compacted():
        records = read_all(broker.bootstrap, topic)
        return records if len(records) == len(latest) else None

    records = wait_for(compacted, 30, "the cleaner to keep one record per key")
    assert set(records) <= everything, "offsets of kept records unchanged"
    assert sorted(records) == sorted(latest.values())
    assert [v for _, k, v in records if k in keys[:5]] == [None] * 5, "tombstones kept at first"

    live = [r for r in latest.values() if r[2] is not None]
    gone = wait_for(
        lambda: (r := read_all(broker.bootstrap, topic)) == sorted(live) and r,
        30, "tombstones to go after delete.retention.ms")
    assert gone == sorted(live)
    assert log_start_offset(broker.bootstrap, topic) == 0, "cleaning does not move the log start"


def test_kill_9_while_cleaning_leaves_the_log_whole(make_broker, tmp_path):
    # Slow I/O so the kill lands mid clean.
    slow = ["--override", "log.cleaner.backoff.ms=100",
            "--override", "log.cleaner.io.max.bytes.per.second=400000"]
    data_dir = tmp_path / "data"
    broker = make_broker(extra=slow, data_dir=data_dir)
    topic = "crashy"
    create_topic(broker.bootstrap, topic, {**COMPACTED, "segment.bytes": "65536"})
    keys = [f"key-{k}".encode() for k in range(50)]
    messages = [(keys[i % 50], f"value-{i}-".encode() + b"x" * 1000) for i in range(2000)]
    offsets = produce_confluent(broker.bootstrap, topic, messages)
    messages.append((b"filler", os.urandom(70000)))
    offsets += produce_confluent(broker.bootstrap, topic, messages[-1:])
    latest = latest_per_key(messages, offsets)
    everything = {(o, k, v) for (k, v), o in zip(messages, offsets)}
    partition_dir = data_dir / f"{topic}-0"

    wait_for(lambda: any(p.name.endswith((".cleaned", ".swap")) for p in partition_dir.iterdir()),
             60, "the cleaner to start writing")
    time.sleep(random.uniform(0, 1.0))
    broker.kill9()

    broker.extra = FAST_CLEANER
    broker.start()
    records = read_all(broker.bootstrap, topic)
    assert set(records) <= everything, "nothing but what was produced, at its offset"
    assert set(latest.values()) <= set(records), "every key's latest value is there"
    assert log_start_offset(broker.bootstrap, topic) == 0
    # The cleaner then finishes the job.
    wait_for(lambda: sorted(read_all(broker.bootstrap, topic)) == sorted(latest.values()),
             60, "the restarted cleaner to finish")


def produce_v8(topic, batch):
    name = topic.encode()
    body = struct.pack(">hhi", -1, 1, 10000)           # transactional id null, acks 1, timeout
    body += struct.pack(">ih", 1, len(name)) + name     # one topic
    body += struct.pack(">iii", 1, 0, len(batch)) + batch
    return request(0, 8, 7, body)


def parse_produce_v8(response):
    """(error code, [(batch index, message)], error message) of the one partition."""
    at = 4 + 4                                           # correlation id, topic count
    (name_len,) = struct.unpack(">h", response[at:at + 2])
    at += 2 + name_len + 4                               # name, partition count
    _index, error = struct.unpack(">ih", response[at:at + 6])
    at += 6 + 8 + 8 + 8                                  # base offset, append time, log start
    (count,) = struct.unpack(">i", response[at:at + 4])
    at += 4
    record_errors = []

    def string():
        nonlocal at
        (n,) = struct.unpack(">h", response[at:at + 2])
        at += 2
        if n < 0:
            return None
        value = response[at:at + n].decode()
        at += n
        return value

    for _ in range(count):
        (batch_index,) = struct.unpack(">i", response[at:at + 4])
        at += 4
        record_errors.append((batch_index, string()))
    return error, record_errors, string()


def test_records_without_a_key_are_refused_with_record_errors(broker):
    topic = "keys-required"
    create_topic(broker.bootstrap, topic, {"cleanup.policy": "compact,delete"})

    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=1 << 20)
    for i, key in enumerate([b"a", None, b"c", None]):
        builder.append(i, timestamp=None, key=key, value=b"v", headers=[])
    with socket.create_connection(("127.0.0.1", broker.port)) as s:
        s.sendall(produce_v8(topic, bytes(builder.build())))
        error, record_errors, message = parse_produce_v8(read_response(s))
    assert error == 87, "INVALID_RECORD"
    assert [i for i, _ in record_errors] == [1, 3]
    assert all("without key" in m for _, m in record_errors)
    assert "2 record errors" in message

    # confluent-kafka surfaces the error in the delivery report.
    producer = Producer({"bootstrap.servers": broker.bootstrap, "retries": 0})
    errors = []
    producer.produce(topic, value=b"no key", on_delivery=lambda err, msg: errors.append(err))
    producer.produce(topic, key=b"k", value=b"keyed", on_delivery=lambda err, msg: errors.append(err))
    producer.flush(10)
    assert errors[0] is not None and errors[0].code() == KafkaError.INVALID_RECORD
    # kafka-python raises.
    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=0)
    with pytest.raises(InvalidRecordError):
        kp.send(topic, value=b"no key").get(timeout=10)
    assert kp.send(topic, key=b"k", value=b"keyed").get(timeout=10).offset >= 0
    kp.close()
    # Nothing keyless got in.
    assert all(k is not None for _, k, _ in read_all(broker.bootstrap, topic))
