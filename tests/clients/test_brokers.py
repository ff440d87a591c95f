"""Many brokers behind one `gregor coordinator`: partitions placed across
three brokers, each serving only what it leads; every client library
producing and consuming every partition through one bootstrap address;
consumer groups coordinated by the broker owning the group's
`__consumer_offsets` partition; a killed broker's partitions offline until
it returns with its data; controlled shutdown on SIGTERM."""
import asyncio
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest
from confluent_kafka import Consumer as CKConsumer
from confluent_kafka import Producer as CKProducer
from confluent_kafka import TopicPartition as CKTopicPartition
from confluent_kafka.admin import AdminClient
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from conftest import BIN, Broker, read_response, request
from test_coordinator import Coordinator, broker_entry, wait_until

TOPIC_PARTITIONS = 6


class Cluster:
    """One coordinator process and brokers 0..n-1 registered with it."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.coordinator = Coordinator(tmp_path / "coordinator").start()
        self.brokers = {}

    def add_broker(self, broker_id, rack=None, start=True, data_dir=None):
        extra = [
            "--override", f"zookeeper.connect={self.coordinator.address}",
            "--override", f"node.id={broker_id}",
        ]
        if rack:
            extra += ["--override", f"broker.rack={rack}"]
        broker = Broker(data_dir or self.tmp_path / f"broker{broker_id}", extra=extra)
        self.brokers.setdefault(broker_id, broker)
        return broker.start() if start else broker

    def bootstrap(self, broker_id=0):
        return self.brokers[broker_id].bootstrap

    def stop_all(self):
        for process in [*self.brokers.values(), self.coordinator]:
            try:
                process.stop(signal.SIGKILL)
            except Exception:
                pass


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    try:
        for broker_id, rack in enumerate(["rack-a", "rack-b", "rack-c"]):
            c.add_broker(broker_id, rack=rack)
        yield c
    finally:
        c.stop_all()


def create_topic(bootstrap, name, partitions=TOPIC_PARTITIONS):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


def leaders(bootstrap, topic):
    """Partition -> leader id (-1 when none) as librdkafka reads Metadata."""
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    partitions = metadata.topics[topic].partitions
    return {p: partitions[p].leader for p in partitions}


def wait_for_leaders(bootstrap, topic, condition, timeout=30):
    return wait_until(lambda: (lambda found: found if condition(found) else None)(
        leaders(bootstrap, topic)), timeout=timeout)


def all_led(found):
    return len(found) == TOPIC_PARTITIONS and all(l >= 0 for l in found.values())


def values_for(partition, count=5):
    return [f"p{partition}-m{i}".encode() for i in range(count)]


# --- clients, each producing to and consuming every partition ---

def kafka_python_roundtrip(bootstrap, topic, api_version=None):
    kwargs = {"api_version": api_version} if api_version else {}
    producer = KafkaProducer(bootstrap_servers=bootstrap, **kwargs)
    for p in range(TOPIC_PARTITIONS):
        for value in values_for(p):
            producer.send(topic, value, partition=p)
    producer.flush(timeout=30)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=10000, **kwargs)
    consumer.assign([TopicPartition(topic, p) for p in range(TOPIC_PARTITIONS)])
    consumer.seek_to_beginning()
    got = {}
    for message in consumer:
        got.setdefault(message.partition, []).append(message.value)
        if sum(map(len, got.values())) >= 5 * TOPIC_PARTITIONS:
            break
    consumer.close()
    return got


def confluent_roundtrip(bootstrap, topic):
    producer = CKProducer({"bootstrap.servers": bootstrap})
    for p in range(TOPIC_PARTITIONS):
        for value in values_for(p):
            producer.produce(topic, value, partition=p)
    assert producer.flush(30) == 0
    consumer = CKConsumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                           "enable.auto.commit": False})
    consumer.assign([CKTopicPartition(topic, p, 0) for p in range(TOPIC_PARTITIONS)])
    got, deadline = {}, time.time() + 20
    while sum(map(len, got.values())) < 5 * TOPIC_PARTITIONS and time.time() < deadline:
        message = consumer.poll(1.0)
        if message is not None and not message.error():
            got.setdefault(message.partition(), []).append(message.value())
    consumer.close()
    return got


def aiokafka_roundtrip(bootstrap, topic):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition as AioTopicPartition

    async def scenario():
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for p in range(TOPIC_PARTITIONS):
                for value in values_for(p):
                    await producer.send_and_wait(topic, value, partition=p)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        got = {}
        try:
            consumer.assign([AioTopicPartition(topic, p) for p in range(TOPIC_PARTITIONS)])
            await consumer.seek_to_beginning()
            deadline = time.time() + 20
            while sum(map(len, got.values())) < 5 * TOPIC_PARTITIONS and time.time() < deadline:
                batches = await consumer.getmany(timeout_ms=1000)
                for tp, messages in batches.items():
                    got.setdefault(tp.partition, []).extend(m.value for m in messages)
        finally:
            await consumer.stop()
        return got

    return asyncio.run(scenario())


def kcat_roundtrip(bootstrap, topic):
    for p in range(TOPIC_PARTITIONS):
        lines = b"\n".join(values_for(p)) + b"\n"
        subprocess.run(["kcat", "-b", bootstrap, "-P", "-t", topic, "-p", str(p)],
                       input=lines, check=True, timeout=30)
    got = {}
    for p in range(TOPIC_PARTITIONS):
        out = subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", topic, "-p", str(p),
                              "-o", "beginning", "-e", "-q"],
                             capture_output=True, check=True, timeout=30).stdout
        got[p] = out.splitlines()
    return got


CLIENTS = {
    "kafka-python-0.10.1": lambda b, t: kafka_python_roundtrip(b, t, (0, 10, 1)),
    "kafka-python-auto": lambda b, t: kafka_python_roundtrip(b, t),
    "confluent-kafka": confluent_roundtrip,
    "aiokafka": aiokafka_roundtrip,
    "kcat": kcat_roundtrip,
}


# --- raw frames ---

def list_offsets_v1(port, topic, partition):
    """ListOffsets v1 for the latest offset: (error_code, offset)."""
    name = topic.encode()
    body = (struct.pack(">i", -1) + struct.pack(">i", 1) + struct.pack(">h", len(name)) + name
            + struct.pack(">i", 1) + struct.pack(">iq", partition, -1))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request(2, 1, 7, body))
        response = read_response(s)
    # correlation id, 1 topic (name), 1 partition: index, error, timestamp, offset
    at = 4 + 4
    (length,) = struct.unpack_from(">h", response, at)
    at += 2 + length + 4
    _index, error, _timestamp, offset = struct.unpack_from(">ihqq", response, at)
    return error, offset


def find_coordinator_v0(port, group):
    """FindCoordinator v0: (node_id, port) of the group's coordinator."""
    name = group.encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request(10, 0, 8, struct.pack(">h", len(name)) + name))
        response = read_response(s)
    error, node_id = struct.unpack_from(">hi", response, 4)
    assert error == 0, error
    (length,) = struct.unpack_from(">h", response, 10)
    (coordinator_port,) = struct.unpack_from(">i", response, 12 + length)
    return node_id, coordinator_port


def heartbeat_v0(port, group):
    """Heartbeat v0 from an unknown member: the error code."""
    name = group.encode()
    member = b"nobody"
    body = (struct.pack(">h", len(name)) + name + struct.pack(">i", 1)
            + struct.pack(">h", len(member)) + member)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request(12, 0, 9, body))
        response = read_response(s)
    return struct.unpack_from(">h", response, 4)[0]


# --- tests ---

def test_a_six_partition_topic_gets_leaders_on_all_three_brokers(cluster):
    registered = cluster.coordinator.cluster()["brokers"]
    assert sorted(b["id"] for b in registered) == [0, 1, 2]
    assert all(not b["fenced"] for b in registered)

    create_topic(cluster.bootstrap(1), "spread")
    found = wait_for_leaders(cluster.bootstrap(0), "spread", all_led)
    per_broker = sorted(list(found.values()).count(b) for b in (0, 1, 2))
    assert per_broker == [2, 2, 2], found

    # Metadata through any broker lists all three, each at its own address
    # on the listener the client came in on.
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap(2))
    try:
        described = admin.describe_cluster()
    finally:
        admin.close()
    assert {(b["broker_id"], b["port"], b["rack"]) for b in described["brokers"]} == {
        (i, cluster.brokers[i].port, rack) for i, rack in enumerate(["rack-a", "rack-b", "rack-c"])
    }


def test_kafka_topics_describe_shows_leaders_across_brokers(cluster):
    create_topic(cluster.bootstrap(0), "described")
    found = wait_for_leaders(cluster.bootstrap(0), "described", all_led)
    out = subprocess.run([str(BIN), "topics", "--bootstrap-server", cluster.bootstrap(1),
                          "--describe", "--topic", "described"],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    for partition, leader in found.items():
        assert f"Partition: {partition}\tLeader: {leader}\t" in out, out


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_every_client_produces_and_consumes_every_partition_through_one_bootstrap(cluster, client):
    topic = f"all-{client.replace('.', '-')}"
    create_topic(cluster.bootstrap(0), topic)
    wait_for_leaders(cluster.bootstrap(0), topic, all_led)
    got = CLIENTS[client](cluster.bootstrap(2), topic)
    assert got == {p: values_for(p) for p in range(TOPIC_PARTITIONS)}


def test_a_partition_led_elsewhere_answers_not_leader_or_follower(cluster):
    create_topic(cluster.bootstrap(0), "elsewhere")
    found = wait_for_leaders(cluster.bootstrap(0), "elsewhere", all_led)
    for partition, leader in found.items():
        for broker_id, broker in cluster.brokers.items():
            error, offset = list_offsets_v1(broker.port, "elsewhere", partition)
            if broker_id == leader:
                assert (error, offset) == (0, 0)
            else:
                assert error == 6, (partition, broker_id)  # NOT_LEADER_OR_FOLLOWER
    # An unknown topic is still unknown everywhere.
    assert list_offsets_v1(cluster.brokers[1].port, "missing", 0)[0] == 3


def test_a_group_with_members_on_different_brokers_rebalances_and_commits(cluster):
    create_topic(cluster.bootstrap(0), "grouped")
    wait_for_leaders(cluster.bootstrap(0), "grouped", all_led)
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap(1))
    for p in range(TOPIC_PARTITIONS):
        for value in values_for(p, 3):
            producer.send("grouped", value, partition=p)
    producer.flush()
    producer.close()

    def member(broker_id):
        consumer = CKConsumer({"bootstrap.servers": cluster.bootstrap(broker_id),
                               "group.id": "spread-group", "auto.offset.reset": "earliest",
                               "enable.auto.commit": False, "session.timeout.ms": 10000,
                               "heartbeat.interval.ms": 500})
        consumer.subscribe(["grouped"])
        return consumer

    # Members bootstrapped through different brokers join one group.
    first, second = member(0), member(2)
    seen = []
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            for consumer in (first, second):
                message = consumer.poll(0.1)
                if message is not None and not message.error():
                    seen.append(message.value())
            held = [{p.partition for p in c.assignment()} for c in (first, second)]
            if all(held) and not held[0] & held[1] and len(held[0] | held[1]) == TOPIC_PARTITIONS \
                    and len(seen) == 3 * TOPIC_PARTITIONS:
                break
        assert all(held), f"both members hold partitions: {held}"
        assert sorted(seen) == sorted(v for p in range(TOPIC_PARTITIONS) for v in values_for(p, 3))
        first.commit(asynchronous=False)
        second.commit(asynchronous=False)
    finally:
        first.close()
        second.close()

    # Every broker names the same coordinator; only it serves the group.
    owners = {find_coordinator_v0(b.port, "spread-group") for b in cluster.brokers.values()}
    assert len(owners) == 1
    owner, owner_port = owners.pop()
    assert owner_port == cluster.brokers[owner].port
    for broker_id, broker in cluster.brokers.items():
        expected = 25 if broker_id == owner else 16  # UNKNOWN_MEMBER_ID / NOT_COORDINATOR
        assert heartbeat_v0(broker.port, "spread-group") == expected

    # The committed offsets read back through a broker that is not the owner.
    reader = next(i for i in cluster.brokers if i != owner)
    consumer = CKConsumer({"bootstrap.servers": cluster.bootstrap(reader),
                           "group.id": "spread-group"})
    try:
        committed = consumer.committed(
            [CKTopicPartition("grouped", p) for p in range(TOPIC_PARTITIONS)], timeout=20)
    finally:
        consumer.close()
    assert {tp.partition: tp.offset for tp in committed} == {
        p: 3 for p in range(TOPIC_PARTITIONS)
    }

    # kafka-consumer-groups.sh finds the coordinator through another broker.
    out = subprocess.run([str(BIN), "consumer-groups", "--bootstrap-server",
                          cluster.bootstrap(reader), "--describe", "--group", "spread-group"],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    rows = [line.split() for line in out.splitlines() if line.startswith("spread-group")]
    assert sorted((int(r[2]), r[3]) for r in rows if r[1] == "grouped") == [
        (p, "3") for p in range(TOPIC_PARTITIONS)
    ], out

    # Kafka's internal topic now exists, is internal, and is spread too.
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap(0))
    try:
        [offsets_topic] = admin.describe_topics(["__consumer_offsets"])
    finally:
        admin.close()
    assert offsets_topic["is_internal"] is True
    assert len(offsets_topic["partitions"]) == 50
    assert {p["leader_id"] for p in offsets_topic["partitions"]} == {0, 1, 2}


def test_a_killed_broker_takes_only_its_partitions_offline_until_it_returns(cluster):
    create_topic(cluster.bootstrap(0), "survivor")
    found = wait_for_leaders(cluster.bootstrap(0), "survivor", all_led)
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap(0))
    for p in range(TOPIC_PARTITIONS):
        for value in values_for(p):
            producer.send("survivor", value, partition=p)
    producer.flush()
    producer.close()

    victim = 2
    lost = {p for p, leader in found.items() if leader == victim}
    kept = set(found) - lost
    cluster.brokers[victim].kill9()
    # Fenced once its session times out: its partitions have no leader.
    offline = wait_for_leaders(cluster.bootstrap(0), "survivor",
                               lambda f: all(f[p] == -1 for p in lost), timeout=30)
    assert all(offline[p] == found[p] for p in kept)

    # The other brokers keep serving theirs.
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap(1))
    for p in kept:
        producer.send("survivor", f"after-{p}".encode(), partition=p).get(timeout=20)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=cluster.bootstrap(1), consumer_timeout_ms=8000)
    consumer.assign([TopicPartition("survivor", p) for p in kept])
    consumer.seek_to_beginning()
    got = {}
    for message in consumer:
        got.setdefault(message.partition, []).append(message.value)
        if sum(map(len, got.values())) >= 6 * len(kept):
            break
    consumer.close()
    assert got == {p: values_for(p) + [f"after-{p}".encode()] for p in kept}

    # Back from the same data directory, it leads its partitions again,
    # with the data it had.
    cluster.brokers[victim].start()
    wait_for_leaders(cluster.bootstrap(0), "survivor",
                     lambda f: all(f[p] == victim for p in lost))
    assert kafka_python_consume(cluster.bootstrap(0), "survivor", lost, 5) == {
        p: values_for(p) for p in lost
    }


def kafka_python_consume(bootstrap, topic, partitions, per_partition):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=8000)
    consumer.assign([TopicPartition(topic, p) for p in partitions])
    consumer.seek_to_beginning()
    got = {}
    for message in consumer:
        got.setdefault(message.partition, []).append(message.value)
        if sum(map(len, got.values())) >= per_partition * len(partitions):
            break
    consumer.close()
    return got


def test_sigterm_is_a_controlled_shutdown_and_the_broker_gets_no_new_replicas(cluster):
    create_topic(cluster.bootstrap(0), "handover")
    found = wait_for_leaders(cluster.bootstrap(0), "handover", all_led)
    leaving = 1
    led = {p for p, leader in found.items() if leader == leaving}
    stopped_at = time.time()
    assert cluster.brokers[leaving].stop(signal.SIGTERM) == 0
    # At once, not after the 9 s session timeout.
    offline = wait_for_leaders(cluster.bootstrap(0), "handover",
                               lambda f: all(f[p] == -1 for p in led), timeout=5)
    assert time.time() - stopped_at < 8
    assert "controlled shutdown" in cluster.brokers[leaving].output()
    # Done shutting down, it is fenced: Metadata no longer lists it.
    listed = AdminClient({"bootstrap.servers": cluster.bootstrap(0)}).list_topics(timeout=10)
    assert sorted(listed.brokers) == [0, 2]
    assert all(offline[p] >= 0 for p in set(found) - led)

    # A topic created now is placed on the two brokers still up.
    create_topic(cluster.bootstrap(0), "after-leaving")
    placed = wait_for_leaders(cluster.bootstrap(0), "after-leaving", all_led)
    assert set(placed.values()) == {0, 2}

    cluster.brokers[leaving].start()
    wait_for_leaders(cluster.bootstrap(0), "handover", lambda f: f == found)


def test_the_same_id_from_another_data_dir_is_a_duplicate_registration(cluster):
    epoch = broker_entry(cluster.coordinator.cluster(), 1)["epoch"]
    twin = cluster.add_broker(1, start=False, data_dir=cluster.tmp_path / "twin")
    twin.log = open(twin.log_path, "ab")
    twin.proc = subprocess.Popen(twin.args(), env=twin.env, stdout=twin.log, stderr=twin.log)
    try:
        # It keeps asking for twice the 9 s lease (the old registration
        # might be a dead broker's), then gives up.
        assert twin.proc.wait(timeout=45) != 0
    finally:
        if twin.proc.poll() is None:
            twin.proc.kill()
    assert "DUPLICATE_BROKER_REGISTRATION" in twin.output(), twin.output()
    assert broker_entry(cluster.coordinator.cluster(), 1)["epoch"] == epoch

    # The real broker restarting from its own data directory is not a twin,
    # even before its old lease has run out.
    cluster.brokers[1].restart()
    entry = broker_entry(cluster.coordinator.cluster(), 1)
    assert entry["epoch"] > epoch and entry["fenced"] is False


def test_a_broker_killed_and_restarted_on_an_empty_disk_registers_once_its_old_lease_lapses(cluster):
    # What a lost disk (or a new pod volume) looks like: the same id, a new
    # directory, while the dead incarnation's lease still runs. Kafka's
    # broker retries its registration; so does this one, instead of exiting.
    epoch = broker_entry(cluster.coordinator.cluster(), 1)["epoch"]
    broker = cluster.brokers[1]
    broker.kill9()
    shutil.rmtree(broker.data_dir)
    broker.log = open(broker.log_path, "ab")
    broker.proc = subprocess.Popen(broker.args(), env=broker.env, stdout=broker.log, stderr=broker.log)
    entry = wait_until(lambda: (lambda e: e if e and e["epoch"] > epoch and e["fenced"] is False else None)(
        broker_entry(cluster.coordinator.cluster(), 1)), timeout=40)
    assert entry, broker.output()
    assert broker.proc.poll() is None, broker.output()
    assert "retrying" in broker.output()
    create_topic(cluster.bootstrap(1), "after-empty-disk")
    kafka_python_roundtrip(cluster.bootstrap(1), "after-empty-disk")
