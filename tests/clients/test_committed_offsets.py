"""Committed offsets read back at once: an OffsetFetch answers promptly and
reflects every OffsetCommit answered before it, and every one sent before
it on the same connection (Kafka handles a connection's requests one at a
time, and librdkafka's `commit(asynchronous=True)` then `committed()`
pipelines the two)."""
import asyncio
import socket
import struct
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import read_response, request

FAST_GROUPS = ["--override", "group.initial.rebalance.delay.ms=0"]
MESSAGES = 60


def create_and_fill(bootstrap, topic, count=MESSAGES):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(10)
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(count):
        producer.produce(topic, value=f"v{i}".encode())
    assert producer.flush(10) == 0


def async_commit_then_committed(consumer, tp):
    """Consumes one message at a time, commits it asynchronously (auto
    offset store) and reads the commit back at once. Returns the failures."""
    failures = []
    for _ in range(MESSAGES):
        m = consumer.poll(10)
        assert m is not None and not m.error(), m and m.error()
        consumer.commit(asynchronous=True)
        started = time.monotonic()
        got = consumer.committed([tp], timeout=5)[0].offset
        took = time.monotonic() - started
        if got != m.offset() + 1 or took > 1.0:
            failures.append((m.offset(), got, round(took, 3)))
    return failures


def test_confluent_async_commit_is_read_back_by_committed(make_broker):
    broker = make_broker(FAST_GROUPS)
    create_and_fill(broker.bootstrap, "read-back")
    tp = TopicPartition("read-back", 0)
    consumer = Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": "read-back-assigned",
        "enable.auto.commit": False,
        "enable.auto.offset.store": True,
        "auto.offset.reset": "earliest",
        # librdkafka's default; committed() then asks OffsetFetch for
        # require_stable (KIP-447), which gregor, without transactions,
        # always satisfies.
        "isolation.level": "read_committed",
    })
    consumer.assign([tp])
    try:
        assert async_commit_then_committed(consumer, tp) == []
    finally:
        consumer.close()


def test_confluent_subscribed_consumer_reads_back_async_commits(make_broker):
    broker = make_broker(FAST_GROUPS)
    create_and_fill(broker.bootstrap, "read-back-group")
    tp = TopicPartition("read-back-group", 0)
    consumer = Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": "read-back-subscribed",
        "enable.auto.commit": False,
        "enable.auto.offset.store": True,
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe(["read-back-group"])
    try:
        assert async_commit_then_committed(consumer, tp) == []
    finally:
        consumer.close()


def test_kafka_python_commit_async_then_committed(make_broker):
    from kafka import KafkaConsumer
    from kafka.structs import OffsetAndMetadata
    from kafka.structs import TopicPartition as KTopicPartition

    broker = make_broker(FAST_GROUPS)
    create_and_fill(broker.bootstrap, "kp-read-back", 20)
    tp = KTopicPartition("kp-read-back", 0)
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap, group_id="kp-read-back",
        enable_auto_commit=False, auto_offset_reset="earliest",
    )
    consumer.assign([tp])
    try:
        for offset in range(1, 21):
            consumer.commit_async({tp: OffsetAndMetadata(offset, "", -1)})
            started = time.monotonic()
            assert consumer.committed(tp) == offset
            assert time.monotonic() - started < 1.0
    finally:
        consumer.close()


def test_aiokafka_commit_is_read_back_on_another_connection(make_broker):
    """An acknowledged commit is what the next OffsetFetch reports, from
    another consumer with connections of its own."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition as ATopicPartition

    broker = make_broker(FAST_GROUPS)
    create_and_fill(broker.bootstrap, "aio-read-back", 20)

    async def run():
        tp = ATopicPartition("aio-read-back", 0)
        committer, reader = (
            AIOKafkaConsumer(
                bootstrap_servers=broker.bootstrap, group_id="aio-read-back",
                enable_auto_commit=False,
            )
            for _ in range(2)
        )
        await committer.start()
        await reader.start()
        committer.assign([tp])
        reader.assign([tp])
        try:
            for offset in range(1, 21):
                await committer.commit({tp: offset})
                assert await asyncio.wait_for(reader.committed(tp), 1.0) == offset
        finally:
            await committer.stop()
            await reader.stop()

    asyncio.run(run())


def string(s):
    data = s.encode()
    return struct.pack(">h", len(data)) + data


def offset_commit_v2(correlation_id, group, topic, offset):
    body = (string(group) + struct.pack(">i", -1) + string("") + struct.pack(">q", -1)
            + struct.pack(">i", 1) + string(topic)
            + struct.pack(">i", 1) + struct.pack(">iq", 0, offset) + struct.pack(">h", -1))
    return request(8, 2, correlation_id, body)


def offset_fetch_v1(correlation_id, group, topic):
    body = string(group) + struct.pack(">i", 1) + string(topic) + struct.pack(">ii", 1, 0)
    return request(9, 1, correlation_id, body)


def fetched_offset_v1(frame):
    """(correlation id, committed offset, error) of a one-partition answer."""
    correlation_id, topics = struct.unpack_from(">ii", frame, 0)
    assert topics == 1
    name_len = struct.unpack_from(">h", frame, 8)[0]
    at = 10 + name_len
    partitions, index, offset, metadata_len = struct.unpack_from(">iiqh", frame, at)
    at += 18 + max(metadata_len, 0)
    (error,) = struct.unpack_from(">h", frame, at)
    return correlation_id, offset, error


def test_pipelined_commits_and_fetches_answer_in_request_order(broker):
    """Commits and fetches written back to back in one send, without waiting
    for any answer: each fetch sees the commit sent just before it, so the
    committed offset never goes backwards."""
    create_and_fill(broker.bootstrap, "pipelined", 1)
    # As in Kafka, a broker coordinates a group once FindCoordinator has
    # created the offsets topic and its partition is loaded.
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "pipelined"})
    assert consumer.committed([TopicPartition("pipelined", 0)], timeout=10)[0].offset < 0
    consumer.close()
    pairs = 200
    frames = b"".join(
        offset_commit_v2(2 * i, "pipelined", "pipelined", 1000 + i)
        + offset_fetch_v1(2 * i + 1, "pipelined", "pipelined")
        for i in range(pairs)
    )
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        s.sendall(frames)
        seen = []
        for i in range(pairs):
            commit = read_response(s)
            assert struct.unpack_from(">i", commit, 0)[0] == 2 * i
            assert struct.unpack_from(">h", commit, len(commit) - 2)[0] == 0
            seen.append(fetched_offset_v1(read_response(s)))
    assert seen == [(2 * i + 1, 1000 + i, 0) for i in range(pairs)]
