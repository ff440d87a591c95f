"""DeleteRecords (API 21) against the real broker: confluent-kafka's and
kafka-python's `delete_records`, `kafka-delete-records.sh`, and raw frames
for the errors clients catch before sending. The new log start offset is
what ListOffsets earliest reports, fetches below it get
OFFSET_OUT_OF_RANGE, it survives a restart and kill -9 once acknowledged,
and the segments entirely below it are deleted by the retention check."""
import json
import os
import socket
import struct
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import BIN, read_response, request

RECORDS = 100
# Small segments (one batch each when produced one by one) and a retention
# check every 200 ms, so segment deletion is seen within the test.
SMALL_SEGMENTS = ["--override", "log.retention.check.interval.ms=200"]


def create(bootstrap, topic, partitions=1, config=None):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})
    admin.create_topics([new])[topic].result(10)


def produce(bootstrap, topic, count=RECORDS, partition=0):
    # One record per batch: with small segment.bytes, many segments.
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "batch.num.messages": 1})
    for i in range(count):
        producer.produce(topic, value=f"v{i}".encode(), partition=partition)
        producer.poll(0)
    assert producer.flush(10) == 0


def delete_records(bootstrap, topic, offset, partition=0):
    """The new low watermark (confluent-kafka), or the KafkaError."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.delete_records([TopicPartition(topic, partition, offset)])
    (future,) = futures.values()
    try:
        return future.result(10).low_watermark
    except Exception as error:  # the KafkaException carries the KafkaError
        return error.args[0]


def watermarks(bootstrap, topic, partition=0):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    finally:
        consumer.close()


def consume_from(bootstrap, topic, offset, reset, count=1, partition=0):
    """Assigns at `offset` and polls; returns the first message or error."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"reader-{time.monotonic_ns()}",
        "enable.auto.commit": False,
        "auto.offset.reset": reset,
    })
    consumer.assign([TopicPartition(topic, partition, offset)])
    try:
        deadline = time.time() + 15
        while time.time() < deadline:
            m = consumer.poll(0.5)
            if m is not None:
                return m
        return None
    finally:
        consumer.close()


def segment_files(broker, topic, partition=0):
    return sorted((broker.data_dir / f"{topic}-{partition}").glob("*.log"))


def test_confluent_delete_records_moves_the_log_start(make_broker):
    broker = make_broker(SMALL_SEGMENTS)
    create(broker.bootstrap, "purge", config={"segment.bytes": "1024"})
    produce(broker.bootstrap, "purge")
    before = len(segment_files(broker, "purge"))
    assert before > 5

    assert delete_records(broker.bootstrap, "purge", 42) == 42
    assert watermarks(broker.bootstrap, "purge") == (42, RECORDS)
    # Lower than the start: nothing moves, the answer is the current start.
    assert delete_records(broker.bootstrap, "purge", 10) == 42

    # A consumer positioned below the start gets OFFSET_OUT_OF_RANGE and,
    # with auto.offset.reset=earliest, starts again at the new start.
    m = consume_from(broker.bootstrap, "purge", 3, "earliest")
    assert m is not None and not m.error() and m.offset() == 42
    m = consume_from(broker.bootstrap, "purge", 3, "error")
    assert m is not None and m.error() is not None
    assert m.error().code() == KafkaError._AUTO_OFFSET_RESET
    assert "out of range" in m.error().str().lower()

    # Whole segments below the start go at the next retention check; the
    # one holding offset 42 stays.
    deadline = time.time() + 10
    while time.time() < deadline and len(segment_files(broker, "purge")) == before:
        time.sleep(0.1)
    remaining = segment_files(broker, "purge")
    assert len(remaining) < before
    first_base = int(remaining[0].stem)
    assert 0 < first_base <= 42
    assert watermarks(broker.bootstrap, "purge") == (42, RECORDS)


def test_delete_to_the_high_watermark_and_past_it(broker):
    create(broker.bootstrap, "to-end")
    produce(broker.bootstrap, "to-end", 10)
    error = delete_records(broker.bootstrap, "to-end", 11)
    assert isinstance(error, KafkaError) and error.code() == KafkaError.OFFSET_OUT_OF_RANGE
    assert watermarks(broker.bootstrap, "to-end") == (0, 10)
    # -1 is the high watermark: everything goes, new records come after it.
    assert delete_records(broker.bootstrap, "to-end", -1) == 10
    assert watermarks(broker.bootstrap, "to-end") == (10, 10)
    produce(broker.bootstrap, "to-end", 1)
    m = consume_from(broker.bootstrap, "to-end", 0, "earliest")
    assert m is not None and not m.error() and (m.offset(), m.value()) == (10, b"v0")


def test_a_compacted_topic_refuses_deletion_unless_its_policy_deletes(broker):
    # Kafka: only a cleanup.policy that lists delete lets records be deleted.
    create(broker.bootstrap, "compact-only", config={"cleanup.policy": "compact"})
    create(broker.bootstrap, "compact-delete", config={"cleanup.policy": "compact,delete"})
    for topic in ("compact-only", "compact-delete"):
        producer = Producer({"bootstrap.servers": broker.bootstrap})
        for i in range(5):
            producer.produce(topic, key=b"k%d" % i, value=b"v")
        assert producer.flush(10) == 0
    error = delete_records(broker.bootstrap, "compact-only", 2)
    assert isinstance(error, KafkaError) and error.code() == KafkaError.POLICY_VIOLATION
    assert watermarks(broker.bootstrap, "compact-only") == (0, 5)
    assert delete_records(broker.bootstrap, "compact-delete", 2) == 2


@pytest.mark.parametrize("stop", ["restart", "kill -9"])
def test_the_log_start_survives_a_restart_and_kill_9(make_broker, stop):
    broker = make_broker()
    create(broker.bootstrap, "lasting", config={"segment.bytes": "1024"})
    produce(broker.bootstrap, "lasting")
    assert delete_records(broker.bootstrap, "lasting", 57) == 57
    if stop == "restart":
        broker.stop()
    else:
        broker.kill9()
    broker.start()
    assert watermarks(broker.bootstrap, "lasting") == (57, RECORDS)
    m = consume_from(broker.bootstrap, "lasting", 0, "earliest")
    assert m is not None and not m.error() and m.offset() == 57
    checkpoint = broker.data_dir / "lasting-0" / "log-start-offset"
    assert checkpoint.read_text().strip() == "57"


def test_kafka_python_delete_records(broker):
    from kafka import KafkaAdminClient, KafkaConsumer
    from kafka.structs import TopicPartition as KTopicPartition

    create(broker.bootstrap, "kp-purge", partitions=2)
    produce(broker.bootstrap, "kp-purge", 20, partition=0)
    produce(broker.bootstrap, "kp-purge", 20, partition=1)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    p0, p1 = KTopicPartition("kp-purge", 0), KTopicPartition("kp-purge", 1)
    try:
        result = admin.delete_records({p0: 5, p1: -1})
    finally:
        admin.close()
    assert {tp: r["low_watermark"] for tp, r in result.items()} == {p0: 5, p1: 20}
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    try:
        assert consumer.beginning_offsets([p0, p1]) == {p0: 5, p1: 20}
    finally:
        consumer.close()


def test_kafka_delete_records_sh(broker, tmp_path):
    create(broker.bootstrap, "tool", partitions=2)
    produce(broker.bootstrap, "tool", 10, partition=0)
    offsets = tmp_path / "offsets.json"
    offsets.write_text(json.dumps({
        "partitions": [
            {"topic": "tool", "partition": 0, "offset": 3},
            {"topic": "tool", "partition": 1, "offset": 5},
            {"topic": "missing", "partition": 0, "offset": 1},
        ],
        "version": 1,
    }))
    link = tmp_path / "kafka-delete-records.sh"
    link.symlink_to(BIN)
    result = subprocess.run(
        [str(link), "--bootstrap-server", broker.bootstrap, "--offset-json-file", str(offsets)],
        capture_output=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    assert lines[:2] == ["Executing records delete operation", "Records delete operation completed:"]
    assert "partition: tool-0\tlow_watermark: 3" in lines
    assert any(l.startswith("partition: tool-1\terror: OffsetOutOfRange") for l in lines)
    assert any(l.startswith("partition: missing-0\terror: UnknownTopicOrPartition") for l in lines)
    assert watermarks(broker.bootstrap, "tool") == (3, 10)

    offsets.write_text(json.dumps({"partitions": [
        {"topic": "tool", "partition": 0, "offset": 4},
        {"topic": "tool", "partition": 0, "offset": 6},
    ], "version": 1}))
    result = subprocess.run(
        [str(link), "--bootstrap-server", broker.bootstrap, "--offset-json-file", str(offsets)],
        capture_output=True, timeout=60,
    )
    assert result.returncode == 1
    assert b"duplicate topic partitions: tool-0" in result.stderr


def string(s):
    data = s.encode()
    return struct.pack(">h", len(data)) + data


def delete_records_v0(topic, partition, offset):
    body = (struct.pack(">i", 1) + string(topic) + struct.pack(">i", 1)
            + struct.pack(">iq", partition, offset) + struct.pack(">i", 30000))
    return request(21, 0, 7, body)


def raw_delete(broker, topic, partition, offset):
    """(partition, low watermark, error code) from a v0 exchange."""
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        s.sendall(delete_records_v0(topic, partition, offset))
        frame = read_response(s)
    correlation_id, _throttle, topics = struct.unpack_from(">iii", frame, 0)
    assert (correlation_id, topics) == (7, 1)
    at = 12 + 2 + struct.unpack_from(">h", frame, 12)[0]
    count, index, low_watermark, error = struct.unpack_from(">iiqh", frame, at)
    assert count == 1
    return index, low_watermark, error


def test_unknown_partitions_and_bad_offsets_get_kafkas_error_codes(broker):
    create(broker.bootstrap, "raw", partitions=1)
    produce(broker.bootstrap, "raw", 5)
    unknown_topic_or_partition, offset_out_of_range = 3, 1
    assert raw_delete(broker, "absent", 0, 1) == (0, -1, unknown_topic_or_partition)
    assert raw_delete(broker, "raw", 4, 1) == (4, -1, unknown_topic_or_partition)
    assert raw_delete(broker, "raw", 0, -7) == (0, -1, offset_out_of_range)
    assert raw_delete(broker, "raw", 0, 6) == (0, -1, offset_out_of_range)
    assert raw_delete(broker, "raw", 0, 2) == (0, 2, 0)
