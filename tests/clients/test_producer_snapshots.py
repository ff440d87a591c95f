"""Producer-state snapshots: an idempotent producer idle while other
producers push it far back in the log (over 10,000 offsets) is still known
after a restart (kill -9 or clean), so the retry of its last batch is
answered with the original offset instead of being appended twice, and its
further sends are neither refused nor duplicated. A corrupt snapshot is
ignored and the state rebuilt from the log; the state even outlives the
segments that held the producer's batches, and a follower restarted from
its own snapshots leads with the producer known."""
import socket
import struct
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer
from confluent_kafka import TopicPartition as ConfluentPartition
from confluent_kafka.admin import AdminClient, NewTopic as ConfluentTopic

from conftest import read_response, request
from test_brokers import Cluster
from test_coordinator import wait_until

TOPIC = "idle"
FAST_RETENTION = ["--override", "log.retention.check.interval.ms=300"]


def create_topic(bootstrap, replication_factor=1):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    config = {"segment.bytes": "65536"}
    topic = ConfluentTopic(TOPIC, 1, replication_factor, config=config)
    admin.create_topics([topic])[TOPIC].result(30)


def idempotent_producer(bootstrap):
    return Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                     "linger.ms": 0, "message.timeout.ms": 120000})


def send(producer, values):
    """Sends `values` and waits for every acknowledgement; returns the errors."""
    errors = []

    def delivered(error, _message):
        if error is not None:
            errors.append(error)

    for value in values:
        producer.produce(TOPIC, value, partition=0, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(120) == 0, "every message acknowledged"
    return errors


def fill(bootstrap, producers=4, each=3000):
    """`producers` other idempotent producers write `producers * each` records."""
    for p in range(producers):
        other = idempotent_producer(bootstrap)
        assert send(other, [f"other-{p}-{i}-".encode() + b"x" * 80 for i in range(each)]) == []


def fetch_batches(port, offset):
    """The raw batches a Fetch v4 from `offset` returns, as {base offset: bytes}."""
    name = TOPIC.encode()
    body = struct.pack(">iiiib", -1, 0, 0, 1 << 20, 0)
    body += struct.pack(">ih", 1, len(name)) + name
    body += struct.pack(">iqi", 1, 0, offset) + struct.pack(">i", 1 << 20)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(request(1, 4, 2, body))
        response = read_response(s)
    at = 4 + 4 + 4
    (name_len,) = struct.unpack_from(">h", response, at)
    at += 2 + name_len + 4
    _partition, error, _hw, _lso, aborted = struct.unpack_from(">ihqqi", response, at)
    assert error == 0
    at += 4 + 2 + 8 + 8 + 4 + 16 * max(aborted, 0)
    (size,) = struct.unpack_from(">i", response, at)
    records = response[at + 4:at + 4 + size]
    batches, pos = {}, 0
    while pos + 12 <= len(records):
        base, length = struct.unpack_from(">qi", records, pos)
        if pos + 12 + length > len(records):
            break
        batches[base] = records[pos:pos + 12 + length]
        pos += 12 + length
    return batches


def produce_raw(port, batch, acks=-1):
    """Sends one batch as it is (a retry); (error, base offset)."""
    name = TOPIC.encode()
    body = struct.pack(">hhi", -1, acks, 30000)
    body += struct.pack(">ih", 1, len(name)) + name
    body += struct.pack(">iii", 1, 0, len(batch)) + batch
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(request(0, 3, 1, body))
        response = read_response(s)
    at = 4 + 4
    (name_len,) = struct.unpack_from(">h", response, at)
    at += 2 + name_len + 4
    _partition, error, base_offset = struct.unpack_from(">ihq", response, at)
    return error, base_offset


def watermarks(bootstrap):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "w"})
    try:
        return consumer.get_watermark_offsets(ConfluentPartition(TOPIC, 0), timeout=30)
    finally:
        consumer.close()


def values_from(bootstrap, start):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "r",
                         "enable.auto.commit": False})
    low, high = watermarks(bootstrap)
    consumer.assign([ConfluentPartition(TOPIC, 0, max(start, low) if start else OFFSET_BEGINNING)])
    values, deadline = [], time.time() + 120
    last = max(start, low)
    while last < high and time.time() < deadline:
        for message in consumer.consume(500, timeout=2):
            assert message.error() is None, message.error()
            values.append(message.value())
            last = message.offset() + 1
    consumer.close()
    return values


def wait_for(condition, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise TimeoutError(what)


def idle_producer_far_back(broker):
    """The idle producer's three one-record batches at offsets 0..2, then
    12,000 records of others; returns it and the raw bytes of its last batch."""
    create_topic(broker.bootstrap)
    idle = idempotent_producer(broker.bootstrap)
    for i in range(3):
        assert send(idle, [f"idle-{i}".encode()]) == []
    last_batch = fetch_batches(broker.port, 0)[2]
    fill(broker.bootstrap)
    assert watermarks(broker.bootstrap)[1] == 12_003
    return idle, last_batch


def assert_retry_is_a_duplicate(broker, last_batch, end=12_003):
    assert produce_raw(broker.port, last_batch) == (0, 2), "answered with its original offset"
    assert watermarks(broker.bootstrap)[1] == end, "and not appended again"


def test_idle_producer_retry_is_deduplicated_across_kill9_and_clean_restart(make_broker):
    broker = make_broker()
    idle, last_batch = idle_producer_far_back(broker)
    assert_retry_is_a_duplicate(broker, last_batch)

    broker.kill9()
    broker.start()
    assert_retry_is_a_duplicate(broker, last_batch)

    broker.restart()
    assert_retry_is_a_duplicate(broker, last_batch)

    # The producer itself carries on: no OUT_OF_ORDER_SEQUENCE, no duplicates.
    assert send(idle, [f"idle-{i}".encode() for i in range(3, 13)]) == []
    values = values_from(broker.bootstrap, 0)
    idle_values = [v for v in values if v.startswith(b"idle-")]
    assert idle_values == [f"idle-{i}".encode() for i in range(13)]


def test_corrupt_snapshots_are_ignored_and_the_state_rebuilt_from_the_log(make_broker):
    broker = make_broker()
    _idle, last_batch = idle_producer_far_back(broker)
    broker.stop()
    partition_dir = broker.data_dir / f"{TOPIC}-0"
    snapshots = sorted(partition_dir.glob("*.snapshot"))
    assert len(snapshots) > 2, "a snapshot per roll and one at shutdown"
    for path in snapshots:
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        path.write_bytes(bytes(data))
    broker.start()
    assert_retry_is_a_duplicate(broker, last_batch)
    assert "ignoring producer snapshot" in broker.output()


def test_producer_state_outlives_the_segments_that_held_its_batches(make_broker):
    broker = make_broker(extra=FAST_RETENTION)
    _idle, last_batch = idle_producer_far_back(broker)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    [future] = admin.delete_records([ConfluentPartition(TOPIC, 0, 6_000)]).values()
    future.result(30)
    first_segment = broker.data_dir / f"{TOPIC}-0" / "00000000000000000000.log"
    wait_for(lambda: not first_segment.exists(), 60, "retention to delete the first segment")

    broker.kill9()
    broker.start()
    assert watermarks(broker.bootstrap)[0] == 6_000
    assert_retry_is_a_duplicate(broker, last_batch)


def partition_state(bootstrap):
    """(leader, isr) of the topic's partition as `bootstrap` sees it."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    partition = admin.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions[0]
    return partition.leader, list(partition.isrs)


def test_a_follower_restarted_from_its_snapshots_leads_with_the_idle_producer_known(tmp_path):
    cluster = Cluster(tmp_path)
    try:
        for broker_id in range(3):
            cluster.add_broker(broker_id)
        everyone = ",".join(cluster.bootstrap(b) for b in range(3))
        create_topic(everyone, replication_factor=3)
        wait_until(lambda: len(partition_state(everyone)[1]) == 3, timeout=30)
        idle = idempotent_producer(everyone)
        for i in range(3):
            assert send(idle, [f"idle-{i}".encode()]) == []
        leader = partition_state(everyone)[0]
        last_batch = fetch_batches(cluster.brokers[leader].port, 0)[2]
        fill(everyone)
        follower = next(b for b in range(3) if b != leader)
        follower_dir = cluster.brokers[follower].data_dir / f"{TOPIC}-0"
        wait_until(lambda: len(list(follower_dir.glob("*.snapshot"))) > 2, timeout=60)

        # The follower restarts from its own log and snapshots, catches up,
        # and is the only one left to lead.
        cluster.brokers[follower].kill9()
        cluster.brokers[follower].start()
        follower_bootstrap = cluster.bootstrap(follower)
        wait_until(lambda: follower in partition_state(follower_bootstrap)[1], timeout=60)
        for other in range(3):
            if other != follower:
                cluster.brokers[other].kill9()
        wait_until(lambda: partition_state(follower_bootstrap)[0] == follower, timeout=90)

        port = cluster.brokers[follower].port
        assert produce_raw(port, last_batch, acks=1) == (0, 2)
        assert watermarks(follower_bootstrap)[1] == 12_003
    finally:
        cluster.stop_all()
