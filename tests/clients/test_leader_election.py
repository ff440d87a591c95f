"""Preferred-leader election (ElectLeaders, KIP-183/KIP-460) on three
brokers with replication.factor=3: after a leader is killed and returns,
leadership stays where the controller moved it until an operator asks for
a preferred election (confluent-kafka's AdminClient.elect_leaders, or
kafka-leader-election.sh), or the controller's automatic rebalance
(auto.leader.rebalance.enable) moves it back; clients keep producing and
consuming throughout."""
import json
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka import ElectionType

from conftest import BIN
from test_brokers import Cluster
from test_coordinator import Coordinator, wait_until

TOPIC = "elect"
PARTITIONS = 3
LAG_MS = 3000


class TunedCoordinator(Coordinator):
    """A coordinator started with `--override` settings."""

    def __init__(self, data_dir, overrides):
        super().__init__(data_dir)
        self.overrides = overrides

    def args(self):
        extra = []
        for override in self.overrides:
            extra += ["--override", override]
        return super().args() + extra


def start_cluster(tmp_path, coordinator_overrides):
    cluster = Cluster.__new__(Cluster)
    cluster.tmp_path = tmp_path
    cluster.brokers = {}
    cluster.coordinator = TunedCoordinator(tmp_path / "coordinator", coordinator_overrides).start()
    try:
        for broker_id in range(3):
            broker = cluster.add_broker(broker_id, start=False)
            broker.extra += ["--override", f"replica.lag.time.max.ms={LAG_MS}"]
            broker.start()
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap(0)})
        created = admin.create_topics([NewTopic(
            TOPIC, num_partitions=PARTITIONS, replication_factor=3,
            config={"min.insync.replicas": "2"})])
        created[TOPIC].result(timeout=20)
        wait_until(lambda: all_in_sync(cluster), timeout=20)
    except Exception:
        cluster.stop_all()
        raise
    return cluster


@pytest.fixture
def manual(tmp_path):
    cluster = start_cluster(tmp_path, ["auto.leader.rebalance.enable=false"])
    yield cluster
    cluster.stop_all()


@pytest.fixture
def automatic(tmp_path):
    cluster = start_cluster(tmp_path, ["leader.imbalance.check.interval.seconds=2"])
    yield cluster
    cluster.stop_all()


def partitions(cluster, via=0):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap(via)})
    return admin.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions


def all_in_sync(cluster, via=0):
    return all(p.leader >= 0 and len(p.isrs) == 3 for p in partitions(cluster, via).values())


def preferred(cluster):
    """Partition -> its preferred replica (the first one)."""
    return {p: meta.replicas[0] for p, meta in partitions(cluster).items()}


def leaders(cluster, via=0):
    return {p: meta.leader for p, meta in partitions(cluster, via).items()}


def bounce(cluster, broker_id):
    """kill -9 of a broker, wait for its partitions to get other leaders,
    restart it and wait until it is back in every ISR."""
    cluster.brokers[broker_id].kill9()
    via = next(b for b in range(3) if b != broker_id)
    wait_until(lambda: all(l not in (-1, broker_id) for l in leaders(cluster, via).values()),
               timeout=30)
    cluster.brokers[broker_id].start()
    wait_until(lambda: all_in_sync(cluster), timeout=40)


class Traffic:
    """A confluent-kafka producer (acks=all, idempotent) sending to every
    partition in the background; remembers what was acknowledged."""

    def __init__(self, bootstrap):
        self.acknowledged = {p: [] for p in range(PARTITIONS)}
        self.failed = []
        self.stop = threading.Event()
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                                  "enable.idempotence": True, "linger.ms": 5})
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def delivered(self, error, message):
        if error is None:
            self.acknowledged[message.partition()].append(message.value())
        else:
            self.failed.append(error)

    def run(self):
        i = 0
        while not self.stop.is_set():
            for p in range(PARTITIONS):
                self.producer.produce(TOPIC, f"m-{p}-{i}".encode(), partition=p,
                                      on_delivery=self.delivered)
            self.producer.poll(0.02)
            i += 1
        self.producer.flush(60)

    def finish(self):
        self.stop.set()
        self.thread.join(90)
        return self.acknowledged


def read_back(bootstrap, counts, timeout=60):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "elect-check",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in counts])
    got, deadline = {p: [] for p in counts}, time.time() + timeout
    while time.time() < deadline and any(len(got[p]) < n for p, n in counts.items()):
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            got[message.partition()].append(message.value())
    consumer.close()
    return got


def elect(cluster, election_type, tps, via=0):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap(via)})
    return admin.elect_leaders(election_type, tps).result(timeout=30)


def tool(cluster, *args):
    return subprocess.run(
        [str(BIN), "leader-election", "--bootstrap-server", cluster.bootstrap(0), *args],
        capture_output=True, text=True, timeout=60)


def test_leadership_stays_moved_until_a_preferred_election_moves_it_back(manual):
    first = preferred(manual)
    assert leaders(manual) == first
    traffic = Traffic(manual.bootstrap(0))
    try:
        returned = first[0]
        bounce(manual, returned)
        time.sleep(2)
        # The broker is back and in sync, but it leads nothing again.
        now = leaders(manual)
        assert now[0] != returned
        assert returned not in now.values()

        tp = TopicPartition(TOPIC, 0)
        result = elect(manual, ElectionType.PREFERRED, [tp])
        assert [(r.topic, r.partition) for r in result] == [(TOPIC, 0)]
        assert list(result.values()) == [None]
        wait_until(lambda: leaders(manual)[0] == returned, timeout=15)

        # Asked again: the preferred replica already leads.
        again = elect(manual, ElectionType.PREFERRED, [tp])
        error = list(again.values())[0]
        assert error is not None
        assert error.code() == KafkaError.ELECTION_NOT_NEEDED
        # An unclean election on a partition with a leader is not needed either.
        unclean = elect(manual, ElectionType.UNCLEAN, [TopicPartition(TOPIC, 1)])
        assert list(unclean.values())[0].code() == KafkaError.ELECTION_NOT_NEEDED
        # Every partition asked for (None): only the ones elected are listed.
        assert elect(manual, ElectionType.PREFERRED, None) == {}
    finally:
        acknowledged = traffic.finish()
    assert traffic.failed == []
    assert all(len(values) > 0 for values in acknowledged.values())
    got = read_back(manual.bootstrap(1), {p: len(v) for p, v in acknowledged.items()})
    for p, values in acknowledged.items():
        assert got[p] == values


def test_kafka_leader_election_sh_moves_leaders_back_with_kafkas_output(manual, tmp_path):
    first = preferred(manual)
    returned = first[1]
    bounce(manual, returned)
    moved = [p for p, broker in first.items() if broker == returned]
    assert all(leaders(manual)[p] != returned for p in moved)

    done = tool(manual, "--election-type", "PREFERRED", "--all-topic-partitions")
    assert done.returncode == 0, done.stderr
    names = ", ".join(f"{TOPIC}-{p}" for p in moved)
    assert done.stdout.strip() == f"Successfully completed leader election (PREFERRED) for partitions {names}"
    wait_until(lambda: all(leaders(manual)[p] == returned for p in moved), timeout=15)

    single = tool(manual, "--election-type", "preferred", "--topic", TOPIC, "--partition", str(moved[0]))
    assert single.returncode == 0, single.stderr
    assert single.stdout.strip() == f"Valid replica already elected for partitions {TOPIC}-{moved[0]}"

    path = tmp_path / "elect.json"
    path.write_text(json.dumps({"partitions": [{"topic": TOPIC, "partition": 2},
                                               {"topic": TOPIC, "partition": 0}]}))
    from_file = tool(manual, "--election-type", "PREFERRED", "--path-to-json-file", str(path))
    assert from_file.returncode == 0, from_file.stderr
    assert from_file.stdout.strip() == f"Valid replica already elected for partitions {TOPIC}-0, {TOPIC}-2"

    unknown = tool(manual, "--election-type", "PREFERRED", "--topic", TOPIC, "--partition", "9")
    assert unknown.returncode == 1
    assert unknown.stdout.startswith(
        f"Error completing leader election (PREFERRED) for partition: {TOPIC}-9: UnknownTopicOrPartition")
    assert "1 replica(s) could not be elected" in unknown.stderr

    usage = tool(manual, "--election-type", "PREFERRED")
    assert usage.returncode == 2
    assert "One and only one of the following options is required" in usage.stderr
    no_partition = tool(manual, "--election-type", "PREFERRED", "--topic", TOPIC)
    assert no_partition.returncode == 2


def test_the_controller_rebalances_leaders_back_to_preferred_replicas(automatic):
    first = preferred(automatic)
    traffic = Traffic(automatic.bootstrap(0))
    try:
        bounce(automatic, first[2])
        # Within a few check intervals (2 s) every partition is led by its
        # preferred replica again, without anyone asking.
        wait_until(lambda: leaders(automatic) == first, timeout=30)
    finally:
        acknowledged = traffic.finish()
    assert traffic.failed == []
    got = read_back(automatic.bootstrap(1), {p: len(v) for p, v in acknowledged.items()})
    for p, values in acknowledged.items():
        assert got[p] == values


def test_kafka_topics_sh_reports_under_replicated_and_under_min_isr_partitions(manual):
    def report(flag):
        done = subprocess.run(
            [str(BIN), "topics", "--bootstrap-server", manual.bootstrap(0), "--describe",
             "--topic", TOPIC, flag], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return sorted(int(line.split("\tPartition: ")[1].split("\t")[0])
                      for line in done.stdout.splitlines() if "\tPartition: " in line)

    everything = list(range(PARTITIONS))
    assert report("--under-replicated-partitions") == []
    assert report("--at-min-isr-partitions") == []
    follower = 2
    manual.brokers[follower].kill9()
    wait_until(lambda: all(len(p.isrs) == 2 for p in partitions(manual).values()), timeout=30)
    assert report("--under-replicated-partitions") == everything
    assert report("--at-min-isr-partitions") == everything
    assert report("--under-min-isr-partitions") == []
    assert report("--unavailable-partitions") == []
    manual.brokers[1].kill9()
    wait_until(lambda: all(len(p.isrs) == 1 for p in partitions(manual).values()), timeout=30)
    assert report("--under-min-isr-partitions") == everything
    assert report("--unavailable-partitions") == []


def test_elect_leaders_needs_alter_on_the_cluster(make_broker):
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AclOperation
    from test_acls import CLUSTER, acl, admin_of, secured_broker

    broker = secured_broker(make_broker, topics=["guarded"])
    tp = TopicPartition("guarded", 0)
    admin = admin_of(broker)
    with pytest.raises(KafkaException) as refused:
        result = admin.elect_leaders(ElectionType.PREFERRED, [tp]).result(timeout=20)
        # Some clients report the refusal per partition instead.
        raise KafkaException(list(result.values())[0])
    assert refused.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED

    granted = secured_broker(make_broker, acls=[acl(CLUSTER, "kafka-cluster", AclOperation.ALTER)],
                             topics=["guarded"])
    admin = admin_of(granted)
    result = admin.elect_leaders(ElectionType.PREFERRED, [tp]).result(timeout=20)
    assert list(result.values())[0].code() == KafkaError.ELECTION_NOT_NEEDED


def test_unclean_election_gives_an_offline_partition_an_out_of_sync_leader(manual):
    first = preferred(manual)
    manual.brokers[1].kill9()
    wait_until(lambda: all(1 not in p.isrs for p in partitions(manual).values()), timeout=30)
    manual.brokers[2].kill9()
    wait_until(lambda: all(p.isrs == [0] for p in partitions(manual).values()), timeout=30)
    manual.brokers[0].kill9()
    manual.brokers[1].start()
    # Broker 1 is back, but the last in-sync replica (0) is not: offline.
    wait_until(lambda: all(l == -1 for l in leaders(manual, via=1).values()), timeout=30)
    led_by_zero = next(p for p, broker in first.items() if broker == 0)
    tp = TopicPartition(TOPIC, led_by_zero)
    preferred_result = elect(manual, ElectionType.PREFERRED, [tp], via=1)
    assert list(preferred_result.values())[0].code() == KafkaError.PREFERRED_LEADER_NOT_AVAILABLE

    result = elect(manual, ElectionType.UNCLEAN,
                   [TopicPartition(TOPIC, p) for p in range(PARTITIONS)], via=1)
    assert list(result.values()) == [None] * PARTITIONS
    wait_until(lambda: all(l == 1 for l in leaders(manual, via=1).values()), timeout=15)
    assert all(p.isrs == [1] for p in partitions(manual, via=1).values())


def test_elect_leaders_v0_raw_frames_without_election_type(make_broker):
    """v0 has no election type (always preferred) and no top-level error
    code; a named partition the only replica leads needs no election, an
    unknown one is UNKNOWN_TOPIC_OR_PARTITION."""
    import socket
    import struct

    from conftest import read_response, request

    broker = make_broker()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("raw", 1, 1)])["raw"].result(timeout=10)
    name = b"raw"
    body = (struct.pack(">i", 1) + struct.pack(">h", len(name)) + name
            + struct.pack(">iii", 2, 0, 7) + struct.pack(">i", 30000))
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        s.sendall(request(43, 0, 9, body))
        response = read_response(s)
    correlation, throttle, topics = struct.unpack(">iii", response[:12])
    assert (correlation, throttle, topics) == (9, 0, 1)
    rest = response[12:]
    (length,) = struct.unpack(">h", rest[:2])
    assert rest[2:2 + length] == name
    rest = rest[2 + length:]
    (count,) = struct.unpack(">i", rest[:4])
    rest = rest[4:]
    results = []
    for _ in range(count):
        partition, code, message_length = struct.unpack(">ihh", rest[:8])
        rest = rest[8 + max(message_length, 0):]
        results.append((partition, code))
    assert results == [(0, 84), (7, 3)]
    assert rest == b""
