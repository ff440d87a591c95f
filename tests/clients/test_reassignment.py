"""Partition reassignment (KIP-455): kafka-reassign-partitions.sh moves a
replication-factor-1 and a replication-factor-3 partition onto a broker
added after the topics were created — the leader included — while an
idempotent acks=all confluent-kafka producer writes; every acknowledged
message is read back once, in order, and the brokers the partitions left no
longer hold them. A move that cannot finish (its new broker is down) is
listed, shown by kafka-topics.sh --describe and cancelled. The errors
(NO_REASSIGNMENT_IN_PROGRESS, INVALID_REPLICA_ASSIGNMENT,
UNKNOWN_TOPIC_OR_PARTITION) are checked in raw AlterPartitionReassignments
frames, since neither client library has the API."""
import json
import socket
import struct
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, OFFSET_BEGINNING, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import BIN, read_response
from test_brokers import Cluster
from test_coordinator import wait_until

LAG_MS = 3000


def start_cluster(tmp_path, count=3):
    cluster = Cluster.__new__(Cluster)
    cluster.tmp_path = tmp_path
    cluster.brokers = {}
    from test_coordinator import Coordinator
    cluster.coordinator = Coordinator(tmp_path / "coordinator").start()
    try:
        for broker_id in range(count):
            add_broker(cluster, broker_id)
    except Exception:
        cluster.stop_all()
        raise
    return cluster


def add_broker(cluster, broker_id):
    broker = cluster.add_broker(broker_id, start=False)
    broker.extra += ["--override", f"replica.lag.time.max.ms={LAG_MS}"]
    return broker.start()


@pytest.fixture
def cluster(tmp_path):
    c = start_cluster(tmp_path)
    yield c
    c.stop_all()


def partition(cluster, topic, index=0, via=0):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap(via)})
    return admin.list_topics(topic, timeout=10).topics[topic].partitions[index]


def registered(cluster, broker_id, via=0):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap(via)})
    return broker_id in admin.list_topics(timeout=10).brokers


def tool(cluster, *args, via=0):
    return subprocess.run(
        [str(BIN), "reassign-partitions", "--bootstrap-server", cluster.bootstrap(via), *args],
        capture_output=True, text=True, timeout=60)


def topics_tool(cluster, *args):
    return subprocess.run(
        [str(BIN), "topics", "--bootstrap-server", cluster.bootstrap(0), *args],
        capture_output=True, text=True, timeout=60)


def plan_file(tmp_path, name, moves):
    path = tmp_path / name
    path.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": topic, "partition": p, "replicas": replicas} for topic, p, replicas in moves]}))
    return str(path)


class Traffic:
    """An idempotent acks=all producer writing to partition 0 of each topic
    in the background; remembers what was acknowledged."""

    def __init__(self, bootstrap, topics):
        self.topics = topics
        self.acknowledged = {t: [] for t in topics}
        self.failed = []
        self.stop = threading.Event()
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                                  "enable.idempotence": True, "linger.ms": 5})
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def delivered(self, error, message):
        if error is None:
            self.acknowledged[message.topic()].append(message.value())
        else:
            self.failed.append(error)

    def run(self):
        i = 0
        while not self.stop.is_set():
            for topic in self.topics:
                self.producer.produce(topic, f"{topic}-{i}".encode(), partition=0,
                                      on_delivery=self.delivered)
            self.producer.poll(0.02)
            i += 1
        self.producer.flush(60)

    def finish(self):
        self.stop.set()
        self.thread.join(90)
        return self.acknowledged


def read_back(bootstrap, counts, timeout=90):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reassign-check",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(t, 0, OFFSET_BEGINNING) for t in counts])
    got, deadline = {t: [] for t in counts}, time.time() + timeout
    while time.time() < deadline and any(len(got[t]) < n for t, n in counts.items()):
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            got[message.topic()].append(message.value())
    consumer.close()
    return got


def test_partitions_move_onto_a_new_broker_under_traffic_and_leave_the_old_ones(cluster, tmp_path):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap(0)})
    created = admin.create_topics([
        NewTopic("single", 1, replica_assignment=[[0]]),
        NewTopic("triple", num_partitions=1, replication_factor=3,
                 config={"min.insync.replicas": "2"}),
    ])
    for future in created.values():
        future.result(timeout=20)
    wait_until(lambda: len(partition(cluster, "triple").isrs) == 3, timeout=30)
    old_leader = partition(cluster, "triple").leader
    keep = [b for b in range(3) if b != old_leader]

    traffic = Traffic(cluster.bootstrap(0), ["single", "triple"])
    wait_until(lambda: all(len(v) > 50 for v in traffic.acknowledged.values()), timeout=30)
    # Broker 3 joins after the topics exist; both partitions move onto it,
    # and away from the leader of each.
    add_broker(cluster, 3)
    wait_until(lambda: registered(cluster, 3), timeout=30)
    plan = plan_file(tmp_path, "plan.json", [("single", 0, [3]), ("triple", 0, [3, *keep])])
    executed = tool(cluster, "--execute", "--reassignment-json-file", plan)
    assert executed.returncode == 0, executed.stderr
    lines = executed.stdout.splitlines()
    assert lines[0] == "Current partition replica assignment"
    rollback = json.loads(lines[2])
    assert rollback["version"] == 1
    assert {(p["topic"], tuple(sorted(p["replicas"]))) for p in rollback["partitions"]} == {
        ("single", (0,)), ("triple", (0, 1, 2))}
    assert lines[-1] == "Successfully started partition reassignments for single-0,triple-0"

    def completed():
        verified = tool(cluster, "--verify", "--reassignment-json-file", plan)
        assert verified.returncode == 0, verified.stderr
        return verified.stdout.count("is completed.") == 2 and verified
    verified = wait_until(completed, timeout=90, interval=0.5)
    assert verified.stdout.splitlines()[:3] == [
        "Status of partition reassignment:",
        "Reassignment of partition single-0 is completed.",
        "Reassignment of partition triple-0 is completed.",
    ]
    assert "Clearing broker-level throttles on brokers 0,1,2,3" in verified.stdout
    time.sleep(1)  # a little traffic after the moves, to the new leaders
    acknowledged = traffic.finish()
    assert traffic.failed == []

    single, triple = partition(cluster, "single"), partition(cluster, "triple")
    assert (single.replicas, single.leader) == ([3], 3)
    assert triple.replicas == [3, *keep]
    assert triple.leader == 3
    got = read_back(cluster.bootstrap(1), {t: len(v) for t, v in acknowledged.items()})
    for topic, sent in acknowledged.items():
        assert got[topic] == sent, topic

    # The brokers the partitions left deleted their copies; broker 3 has both.
    def gone():
        return (not (cluster.brokers[0].data_dir / "single-0").exists()
                and not (cluster.brokers[old_leader].data_dir / "triple-0").exists())
    wait_until(gone, timeout=30)
    assert (cluster.brokers[3].data_dir / "single-0").is_dir()
    assert (cluster.brokers[3].data_dir / "triple-0").is_dir()
    assert tool(cluster, "--list").stdout.strip() == "No partition reassignments found."


def test_a_move_in_progress_is_listed_described_and_cancelled(cluster, tmp_path):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap(0)})
    admin.create_topics([NewTopic("held", 1, replica_assignment=[[0, 1]])])["held"].result(timeout=20)
    wait_until(lambda: len(partition(cluster, "held").isrs) == 2, timeout=30)
    # Broker 3 registers and dies: a move onto it can never complete.
    add_broker(cluster, 3)
    wait_until(lambda: registered(cluster, 3), timeout=30)
    cluster.brokers[3].kill9()
    plan = plan_file(tmp_path, "plan.json", [("held", 0, [3, 1])])
    assert tool(cluster, "--execute", "--reassignment-json-file", plan).returncode == 0

    listed = tool(cluster, "--list", via=1)
    assert listed.stdout.splitlines() == [
        "Current partition reassignments:",
        "held-0: replicas: 3,1,0. adding: 3. removing: 0.",
    ]
    described = topics_tool(cluster, "--describe", "--topic", "held")
    assert "\tReplicas: 3,1,0\tIsr: 0,1\tAdding Replicas: 3\tRemoving Replicas: 0" in \
        described.stdout, described.stdout
    verified = tool(cluster, "--verify", "--reassignment-json-file", plan)
    assert "Reassignment of partition held-0 is still in progress." in verified.stdout
    assert "Clearing" not in verified.stdout
    again = tool(cluster, "--execute", "--reassignment-json-file", plan)
    assert again.returncode == 1
    assert "Cannot execute because there is an existing partition assignment." in again.stderr

    cancelled = tool(cluster, "--cancel", "--reassignment-json-file", plan)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.splitlines()[:2] == [
        "Successfully cancelled partition reassignment for: held-0",
        "None of the specified partition moves are active.",
    ]
    held = partition(cluster, "held")
    assert (held.replicas, held.leader) == ([1, 0], 0)
    assert tool(cluster, "--list").stdout.strip() == "No partition reassignments found."
    assert "Adding Replicas" not in topics_tool(cluster, "--describe", "--topic", "held").stdout
    assert tool(cluster, "--cancel", "--reassignment-json-file", plan).stdout.splitlines()[0] == \
        "None of the specified partition reassignments are active."


def test_generate_proposes_the_topics_on_the_given_brokers(cluster, tmp_path):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap(0)})
    admin.create_topics([NewTopic("gen", num_partitions=3, replication_factor=2)])["gen"].result(
        timeout=20)
    topics = tmp_path / "topics.json"
    topics.write_text(json.dumps({"version": 1, "topics": [{"topic": "gen"}]}))
    generated = tool(cluster, "--generate", "--topics-to-move-json-file", str(topics),
                     "--broker-list", "1,2")
    assert generated.returncode == 0, generated.stderr
    lines = generated.stdout.splitlines()
    assert lines[0] == "Current partition replica assignment"
    assert lines[3] == "Proposed partition reassignment configuration"
    proposed = json.loads(lines[4])
    assert [p["partition"] for p in proposed["partitions"]] == [0, 1, 2]
    for p in proposed["partitions"]:
        assert sorted(p["replicas"]) == [1, 2] and p["log_dirs"] == ["any", "any"]
    # The proposal executes as it is.
    plan = tmp_path / "proposed.json"
    plan.write_text(lines[4])
    assert tool(cluster, "--execute", "--reassignment-json-file", str(plan)).returncode == 0
    wait_until(lambda: tool(cluster, "--verify", "--reassignment-json-file", str(plan))
               .stdout.count("is completed.") == 3, timeout=60, interval=0.5)


# Raw AlterPartitionReassignments v0 frames (a flexible version: compact
# strings and arrays, tagged fields).

def uvarint(n):
    out = b""
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def read_uvarint(data, at):
    shift = value = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def compact_string(s):
    raw = s.encode()
    return uvarint(len(raw) + 1) + raw


def alter_reassignments(port, topic, partitions):
    """Sends one topic's partitions ({index: replicas or None}); returns
    (top-level code, {partition: code})."""
    body = struct.pack(">i", 30000) + uvarint(2) + compact_string(topic) + uvarint(len(partitions) + 1)
    for index, replicas in partitions.items():
        body += struct.pack(">i", index)
        if replicas is None:
            body += uvarint(0)
        else:
            body += uvarint(len(replicas) + 1) + b"".join(struct.pack(">i", r) for r in replicas)
        body += uvarint(0)
    body += uvarint(0) + uvarint(0)
    client_id = b"t"
    header = struct.pack(">hhih", 45, 0, 11, len(client_id)) + client_id + uvarint(0)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(struct.pack(">i", len(header + body)) + header + body)
        response = read_response(s)
    (correlation,) = struct.unpack(">i", response[:4])
    assert correlation == 11
    _, at = read_uvarint(response, 4)  # header tagged fields
    _throttle, code = struct.unpack(">ih", response[at:at + 6])
    length, at = read_uvarint(response, at + 6)
    at += max(length - 1, 0)
    topics, at = read_uvarint(response, at)
    codes = {}
    for _ in range(topics - 1):
        length, at = read_uvarint(response, at)
        at += length - 1
        count, at = read_uvarint(response, at)
        for _ in range(count - 1):
            index, partition_code = struct.unpack(">ih", response[at:at + 6])
            length, at = read_uvarint(response, at + 6)
            at += max(length - 1, 0)
            _, at = read_uvarint(response, at)
            codes[index] = partition_code
        _, at = read_uvarint(response, at)
    return code, codes


def test_alter_partition_reassignments_errors_are_kafkas(cluster):
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap(0)})
    admin.create_topics([NewTopic("errs", 2, replica_assignment=[[0, 1], [1, 2]])])["errs"].result(
        timeout=20)
    wait_until(lambda: len(partition(cluster, "errs").isrs) == 2, timeout=30)
    port = cluster.brokers[1].port
    code, codes = alter_reassignments(port, "errs", {0: None, 1: [1, 9], 5: [0]})
    assert code == 0
    # 85 NO_REASSIGNMENT_IN_PROGRESS, 39 INVALID_REPLICA_ASSIGNMENT,
    # 3 UNKNOWN_TOPIC_OR_PARTITION
    assert codes == {0: 85, 1: 39, 5: 3}
    assert alter_reassignments(port, "errs", {0: [0, 0], 1: []}) == (0, {0: 39, 1: 39})
    assert alter_reassignments(port, "nope", {0: [0]}) == (0, {0: 3})
    # Nothing was changed by the refusals; a valid move still works.
    assert alter_reassignments(port, "errs", {0: [1, 0]}) == (0, {0: 0})
    wait_until(lambda: partition(cluster, "errs").replicas == [1, 0], timeout=30)


def test_reassignment_needs_alter_and_describe_on_the_cluster(make_broker, tmp_path):
    from confluent_kafka.admin import AclOperation
    from test_acls import CLUSTER, TOPIC, acl, secured_broker

    def run(broker, *args):
        return subprocess.run(
            [str(BIN), "reassign-partitions", "--bootstrap-server", broker.bootstrap, *args],
            capture_output=True, text=True, timeout=60)

    plan = plan_file(tmp_path, "plan.json", [("guarded", 0, [0])])
    refused = secured_broker(make_broker, topics=["guarded"])
    listed = run(refused, "--list")
    assert listed.returncode == 1 and "error code 31" in listed.stderr, listed.stderr
    assert run(refused, "--execute", "--reassignment-json-file", plan).returncode == 1
    # Raw: every partition asked about carries the refusal too.
    assert alter_reassignments(refused.port, "guarded", {0: [0]}) == (31, {0: 31})

    granted = secured_broker(make_broker, topics=["guarded"], acls=[
        acl(CLUSTER, "kafka-cluster", AclOperation.ALTER),
        acl(CLUSTER, "kafka-cluster", AclOperation.DESCRIBE),
        acl(TOPIC, "guarded", AclOperation.DESCRIBE)])
    assert run(granted, "--list").stdout.strip() == "No partition reassignments found."
    executed = run(granted, "--execute", "--reassignment-json-file", plan)
    assert executed.returncode == 0, executed.stderr
    assert executed.stdout.splitlines()[-1] == "Successfully started partition reassignment for guarded-0"
