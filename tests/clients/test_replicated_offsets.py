"""Committed offsets in a replicated `__consumer_offsets` (three brokers):
the topic gets `offsets.topic.replication.factor` replicas (and is not
created while fewer brokers are alive, as in Kafka since KIP-115); a group
commits through its coordinator, the coordinator is killed with SIGKILL,
the group moves to the new leader of its offsets partition and resumes from
its committed offsets, which never go backwards; kcat reads the topic's
records in Kafka's schemas."""
import socket
import struct
import subprocess
import time

import pytest
from confluent_kafka import Consumer as CKConsumer
from confluent_kafka import KafkaException
from confluent_kafka import Producer as CKProducer
from confluent_kafka import TopicPartition as CKTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from conftest import read_response, request
from test_brokers import Cluster
from test_coordinator import wait_until

TOPIC = "orders"
PARTITIONS = 2
PER_PARTITION = 40
OFFSETS_PARTITIONS = 5
OFFSETS_TOPIC = "__consumer_offsets"
BROKER_OVERRIDES = [
    "--override", "replica.lag.time.max.ms=3000",
    "--override", f"offsets.topic.num.partitions={OFFSETS_PARTITIONS}",
    "--override", "group.initial.rebalance.delay.ms=0",
    # Shorter than the 3 s a dead follower takes to leave the ISR.
    "--override", "offsets.commit.timeout.ms=1000",
]


def add_brokers(cluster, ids):
    for broker_id in ids:
        broker = cluster.add_broker(broker_id, start=False)
        broker.extra += BROKER_OVERRIDES
        broker.start()


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    try:
        add_brokers(c, [0, 1, 2])
        admin = AdminClient({"bootstrap.servers": bootstrap(c)})
        admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=3,
                                      config={"min.insync.replicas": "2"})])[TOPIC].result(20)
        wait_until(lambda: all(p.leader >= 0 and len(p.isrs) == 3
                               for p in partitions(c, TOPIC).values()), timeout=20)
        produce(c, PER_PARTITION)
        yield c
    finally:
        c.stop_all()


def bootstrap(cluster):
    """Every live broker, so clients survive the loss of any one."""
    return ",".join(b.bootstrap for b in cluster.brokers.values() if b.proc is not None)


def live_brokers(cluster):
    return [i for i, b in cluster.brokers.items() if b.proc is not None]


def partitions(cluster, topic):
    metadata = AdminClient({"bootstrap.servers": bootstrap(cluster)}).list_topics(topic, timeout=10)
    found = metadata.topics.get(topic)
    return {} if found is None or found.error else found.partitions


def produce(cluster, count):
    producer = CKProducer({"bootstrap.servers": bootstrap(cluster), "acks": "all"})
    for p in range(PARTITIONS):
        for i in range(count):
            producer.produce(TOPIC, f"p{p}-{time.time_ns()}-{i}".encode(), partition=p)
    assert producer.flush(30) == 0


def java_hash(text):
    """Java's String.hashCode (UTF-16 code units, 32-bit wrapping)."""
    h = 0
    for unit in struct.unpack(f"<{len(text.encode('utf-16-le')) // 2}H",
                              text.encode("utf-16-le")):
        h = (31 * h + unit) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def offsets_partition(group):
    h = java_hash(group)
    return (0 if h == -(1 << 31) else abs(h)) % OFFSETS_PARTITIONS


def coordinator_of(cluster, group, other_than=None):
    """The leader of the group's offsets partition, once it has one (and it
    is not `other_than`)."""
    def leader():
        found = partitions(cluster, OFFSETS_TOPIC).get(offsets_partition(group))
        if found is None or found.leader < 0 or found.leader == other_than:
            return None
        return [found.leader]  # broker 0 is falsy; a list is not
    return wait_until(leader, timeout=60)[0]


def retry(action, timeout=60):
    """Runs `action` until it stops raising (a commit while the coordinator
    moves fails with a retriable error)."""
    deadline = time.time() + timeout
    while True:
        try:
            return action()
        except (KafkaException, KafkaError):
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def test_the_offsets_topic_waits_for_enough_brokers_then_has_three_replicas(tmp_path):
    c = Cluster(tmp_path)
    try:
        add_brokers(c, [0])
        # One live broker of the three offsets.topic.replication.factor asks
        # for: COORDINATOR_NOT_AVAILABLE (15), and no topic.
        body = struct.pack(">h", 1) + b"g" + b"\x00"
        with socket.create_connection(
                ("127.0.0.1", c.brokers[0].port), timeout=10) as s:
            s.sendall(request(10, 1, 1, body))
            answer = read_response(s)
        (error,) = struct.unpack_from(">h", answer, 8)
        assert error == 15
        assert not partitions(c, OFFSETS_TOPIC)

        add_brokers(c, [1, 2])
        consumer = CKConsumer({"bootstrap.servers": bootstrap(c), "group.id": "g"})
        retry(lambda: consumer.committed([CKTopicPartition("t", 0)], timeout=5))
        consumer.close()
        found = partitions(c, OFFSETS_TOPIC)
        assert len(found) == OFFSETS_PARTITIONS
        assert all(len(p.replicas) == 3 for p in found.values())
        assert {p.leader for p in found.values()} == {0, 1, 2}
    finally:
        c.stop_all()


def confluent_consumer(cluster, group):
    consumer = CKConsumer({"bootstrap.servers": bootstrap(cluster), "group.id": group,
                           "auto.offset.reset": "earliest", "enable.auto.commit": False,
                           "session.timeout.ms": 30000})
    consumer.subscribe([TOPIC])
    return consumer


def confluent_batch(consumer):
    message = consumer.poll(0.5)
    if message is None or message.error():
        return []
    return [(message.partition(), message.offset())]


def confluent_poll(consumer, want, timeout=60):
    """(partition, offset) of up to `want` messages."""
    got, deadline = [], time.time() + timeout
    while len(got) < want and time.time() < deadline:
        got += confluent_batch(consumer)
    return got


ALL = {(p, o) for p in range(PARTITIONS) for o in range(PER_PARTITION)}


def poll_rest(batch, seen, timeout=90):
    """Polls until every message produced so far was seen; returns what
    came (redeliveries included)."""
    after, deadline = [], time.time() + timeout
    while not ALL <= seen and time.time() < deadline:
        got = batch()
        after += got
        seen |= set(got)
    return after


def confluent_committed(consumer):
    tps = [CKTopicPartition(TOPIC, p) for p in range(PARTITIONS)]
    return {tp.partition: tp.offset for tp in consumer.committed(tps, timeout=30)}


def test_confluent_group_resumes_from_its_commits_on_the_new_coordinator(cluster):
    group = "ck-group"
    consumer = confluent_consumer(cluster, group)
    before = confluent_poll(consumer, PER_PARTITION)
    assert len(before) == PER_PARTITION
    retry(lambda: consumer.commit(asynchronous=False))
    committed = confluent_committed(consumer)
    consumed = {p: max([o for q, o in before if q == p], default=-1) + 1 for p in range(PARTITIONS)}
    assert committed == {p: consumed[p] if consumed[p] > 0 else -1001 for p in range(PARTITIONS)}

    victim = coordinator_of(cluster, group)
    cluster.brokers[victim].kill9()
    successor = coordinator_of(cluster, group, other_than=victim)
    assert successor in live_brokers(cluster)

    # The same consumer goes on: nothing it gets is below what it committed.
    after = poll_rest(lambda: confluent_batch(consumer), set(before))
    floor = {p: max(committed[p], 0) for p in range(PARTITIONS)}
    assert all(o >= floor[p] for p, o in after), (floor, after)
    assert set(before + after) >= ALL
    retry(lambda: consumer.commit(asynchronous=False))
    final = confluent_committed(consumer)
    assert final == {p: PER_PARTITION for p in range(PARTITIONS)}
    consumer.close()

    # A new member of the group starts exactly where the group left off.
    produce(cluster, 3)
    fresh = confluent_consumer(cluster, group)
    assert confluent_committed(fresh) == final, "committed offsets never go backwards"
    got = confluent_poll(fresh, 3 * PARTITIONS)
    assert sorted(got) == [(p, PER_PARTITION + i) for p in range(PARTITIONS) for i in range(3)]
    fresh.close()


def kafka_python_consumer(cluster, group):
    return KafkaConsumer(TOPIC, bootstrap_servers=bootstrap(cluster).split(","),
                         group_id=group, auto_offset_reset="earliest",
                         enable_auto_commit=False, consumer_timeout_ms=2000,
                         session_timeout_ms=30000, heartbeat_interval_ms=1000)


def kafka_python_batch(consumer):
    return [(r.partition, r.offset)
            for records in consumer.poll(timeout_ms=500).values() for r in records]


def kafka_python_poll(consumer, want, timeout=60):
    got, deadline = [], time.time() + timeout
    while len(got) < want and time.time() < deadline:
        got += kafka_python_batch(consumer)
    return got


def kafka_python_committed(consumer):
    return {p: consumer.committed(TopicPartition(TOPIC, p)) for p in range(PARTITIONS)}


def test_kafka_python_group_resumes_from_its_commits_on_the_new_coordinator(cluster):
    group = "kp-group"
    consumer = kafka_python_consumer(cluster, group)
    before = kafka_python_poll(consumer, PER_PARTITION)
    assert len(before) >= PER_PARTITION
    retry(consumer.commit)
    committed = kafka_python_committed(consumer)

    victim = coordinator_of(cluster, group)
    cluster.brokers[victim].kill9()
    assert coordinator_of(cluster, group, other_than=victim) in live_brokers(cluster)

    after = poll_rest(lambda: kafka_python_batch(consumer), set(before))
    floor = {p: committed[p] or 0 for p in range(PARTITIONS)}
    assert all(o >= floor[p] for p, o in after), (floor, after)
    assert set(before + after) >= ALL
    retry(consumer.commit)
    final = kafka_python_committed(consumer)
    assert final == {p: PER_PARTITION for p in range(PARTITIONS)}
    assert all(final[p] >= (committed[p] or 0) for p in range(PARTITIONS))
    consumer.close()

    produce(cluster, 2)
    fresh = kafka_python_consumer(cluster, group)
    got = kafka_python_poll(fresh, 2 * PARTITIONS)
    assert sorted(got) == [(p, PER_PARTITION + i) for p in range(PARTITIONS) for i in range(2)]
    fresh.close()


def kcat_records(cluster, partition):
    """(key, value) of every record of one offsets partition; value None for
    a tombstone. kcat prints each as `K\\n<key>S\\n<value>`."""
    out = subprocess.run(
        ["kcat", "-b", bootstrap(cluster), "-C", "-t", OFFSETS_TOPIC, "-p", str(partition),
         "-o", "beginning", "-e", "-q", "-f", "%K\n%k%S\n%s"],
        capture_output=True, timeout=60, check=True).stdout
    records, at = [], 0
    while at < len(out):
        newline = out.index(b"\n", at)
        key_len = int(out[at:newline])
        key = out[newline + 1:newline + 1 + key_len]
        at = newline + 1 + key_len
        newline = out.index(b"\n", at)
        value_len = int(out[at:newline])
        value = out[newline + 1:newline + 1 + max(value_len, 0)] if value_len >= 0 else None
        at = newline + 1 + max(value_len, 0)
        records.append((key, value))
    return records


def read_string(data, at):
    (length,) = struct.unpack_from(">h", data, at)
    if length < 0:
        return None, at + 2
    return data[at + 2:at + 2 + length].decode(), at + 2 + length


def test_kcat_reads_commits_and_group_metadata_in_kafkas_schemas(cluster):
    group = "kcat-group"
    consumer = confluent_consumer(cluster, group)
    assert len(confluent_poll(consumer, 10)) == 10
    retry(lambda: consumer.commit(asynchronous=False))
    committed = confluent_committed(consumer)
    consumer.close()

    records = kcat_records(cluster, offsets_partition(group))
    commits, groups = {}, []
    for key, value in records:
        (version,) = struct.unpack_from(">h", key, 0)
        name, at = read_string(key, 2)
        if name != group:
            continue
        if version in (0, 1):
            topic, at = read_string(key, at)
            (partition,) = struct.unpack_from(">i", key, at)
            assert value is not None
            (value_version, offset) = struct.unpack_from(">hq", value, 0)
            assert value_version == 3
            commits[(topic, partition)] = offset
        elif version == 2 and value is not None:
            (value_version,) = struct.unpack_from(">h", value, 0)
            assert value_version == 3
            protocol_type, at = read_string(value, 2)
            (generation,) = struct.unpack_from(">i", value, at)
            groups.append((protocol_type, generation))
    assert {p: commits.get((TOPIC, p), -1001) for p in range(PARTITIONS)} == committed
    assert groups and groups[0][0] == "consumer" and groups[-1][1] >= 1


def raw_commit(broker, group, offset):
    """A standalone OffsetCommit v2 of `orders/0` sent to `broker`; its error."""
    def string(text):
        return struct.pack(">h", len(text)) + text.encode()
    body = (string(group) + struct.pack(">i", -1) + string("") + struct.pack(">q", -1)
            + struct.pack(">i", 1) + string(TOPIC)
            + struct.pack(">i", 1) + struct.pack(">iq", 0, offset) + struct.pack(">h", -1))
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        s.sendall(request(8, 2, 1, body))
        answer = read_response(s)
    return struct.unpack_from(">h", answer, len(answer) - 2)[0]


def test_a_commit_waits_for_the_isr_and_times_out_as_kafka(cluster):
    group = "lonely"
    consumer = CKConsumer({"bootstrap.servers": bootstrap(cluster), "group.id": group})
    retry(lambda: consumer.committed([CKTopicPartition(TOPIC, 0)], timeout=5))
    consumer.close()
    leader = coordinator_of(cluster, group)
    assert raw_commit(cluster.brokers[leader], group, 5) == 0

    for broker_id in live_brokers(cluster):
        if broker_id != leader:
            cluster.brokers[broker_id].kill9()
    # The followers still count as in sync: the commit is written but never
    # replicated within offsets.commit.timeout.ms, REQUEST_TIMED_OUT (7).
    started = time.time()
    assert raw_commit(cluster.brokers[leader], group, 6) == 7
    assert time.time() - started < 3
    # Once they have left the ISR (min.insync.replicas is the broker's, 1),
    # commits succeed again, and none went backwards.
    wait_until(lambda: raw_commit(cluster.brokers[leader], group, 7) == 0, timeout=30)
    consumer = CKConsumer({"bootstrap.servers": cluster.brokers[leader].bootstrap,
                           "group.id": group})
    [tp] = consumer.committed([CKTopicPartition(TOPIC, 0)], timeout=10)
    consumer.close()
    assert tp.offset == 7
