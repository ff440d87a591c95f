"""Eligible leader replicas (KIP-966) on three brokers, replication.factor=3
and min.insync.replicas=2, with the coordinator at
eligible.leader.replicas.version=1: the followers stop one after the
other, then the leader dies; the follower that left the ISR below min ISR
is eligible, and when it returns first it leads without an unclean
election, and every acks=all message confluent-kafka saw acknowledged is
still there. A replica back from a crash is no longer eligible; when every
replica crashed, the last leader leads again (Kafka's balanced recovery).
With the feature off (Kafka 4.0's default) the same returning broker waits
for the last ISR member."""
import signal
import subprocess
import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import BIN
from test_brokers import Cluster
from test_coordinator import wait_until
from test_leader_election import TunedCoordinator

TOPIC = "elr"
LAG_MS = 3000


def start_cluster(tmp_path, elr_version):
    cluster = Cluster.__new__(Cluster)
    cluster.tmp_path = tmp_path
    cluster.brokers = {}
    cluster.coordinator = TunedCoordinator(tmp_path / "coordinator", [
        f"eligible.leader.replicas.version={elr_version}",
        "min.insync.replicas=2",
        "auto.leader.rebalance.enable=false",
    ]).start()
    try:
        for broker_id in range(3):
            broker = cluster.add_broker(broker_id, start=False)
            broker.extra += ["--override", f"replica.lag.time.max.ms={LAG_MS}"]
            broker.start()
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap(0)})
        created = admin.create_topics([NewTopic(
            TOPIC, num_partitions=1, replication_factor=3,
            config={"min.insync.replicas": "2"})])
        created[TOPIC].result(timeout=20)
        wait_until(lambda: len(view(cluster)["isr"]) == 3, timeout=30)
    except Exception:
        cluster.stop_all()
        raise
    return cluster


@pytest.fixture
def elr_cluster(tmp_path):
    cluster = start_cluster(tmp_path, 1)
    yield cluster
    cluster.stop_all()


@pytest.fixture
def plain_cluster(tmp_path):
    cluster = start_cluster(tmp_path, 0)
    yield cluster
    cluster.stop_all()


def view(cluster):
    """The partition as the coordinator's image has it (leader, isr, elr,
    last_known_elr)."""
    topic = next(t for t in cluster.coordinator.cluster()["topics"] if t["name"] == TOPIC)
    return topic["partitions"][0]


def describe_line(cluster, via):
    """The partition's line of `kafka-topics.sh --describe`."""
    out = subprocess.run(
        [str(BIN), "topics", "--describe", "--topic", TOPIC,
         "--bootstrap-server", cluster.bootstrap(via)],
        capture_output=True, text=True, timeout=60, check=True).stdout
    return next(line for line in out.splitlines() if "Partition: 0" in line)


def produce_acknowledged(bootstrap, first, count):
    """acks=all, idempotent; returns the values acknowledged."""
    acknowledged, failed = [], []

    def delivered(error, message):
        (failed if error else acknowledged).append(error or message.value())

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all",
                         "enable.idempotence": True, "message.timeout.ms": 30000})
    for i in range(first, first + count):
        producer.produce(TOPIC, f"m-{i}".encode(), partition=0, on_delivery=delivered)
    producer.flush(60)
    assert failed == []
    return acknowledged


def read_back(bootstrap, count, timeout=60):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "elr-check",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(TOPIC, 0, OFFSET_BEGINNING)])
    got = []
    deadline = time.time() + timeout
    while time.time() < deadline and len(got) < count:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            got.append(message.value())
    consumer.close()
    return got


def stop_followers_then_the_leader(cluster, crash_followers=False):
    """Returns (leader, first follower out, last follower out, the values
    acknowledged) after the followers stopped one by one (cleanly, or
    killed with `crash_followers`) and the leader was killed."""
    start = view(cluster)
    leader = start["leader"]
    first_out, last_out = [r for r in start["replicas"] if r != leader]
    via = leader
    acknowledged = produce_acknowledged(cluster.bootstrap(via), 0, 50)

    def stop(follower):
        if crash_followers:
            cluster.brokers[follower].kill9()
        else:
            cluster.brokers[follower].stop(signal.SIGTERM)

    stop(first_out)
    wait_until(lambda: first_out not in view(cluster)["isr"], timeout=40)
    # Two in sync, at min ISR: acks=all still succeeds.
    acknowledged += produce_acknowledged(cluster.bootstrap(via), 50, 50)

    stop(last_out)
    wait_until(lambda: view(cluster)["isr"] == [leader], timeout=30)

    cluster.brokers[leader].kill9()
    wait_until(lambda: view(cluster)["leader"] == -1, timeout=40)
    return leader, first_out, last_out, acknowledged


def test_a_replica_eligible_below_min_isr_leads_cleanly_and_nothing_acknowledged_is_lost(
        elr_cluster):
    cluster = elr_cluster
    leader, first_out, last_out, acknowledged = stop_followers_then_the_leader(cluster)
    state = view(cluster)
    # The ISR emptied; the last follower out and the dead leader are
    # eligible, the first follower out (it left at min ISR) is not.
    assert state["isr"] == []
    assert sorted(state["elr"]) == sorted([last_out, leader])
    assert first_out not in state["elr"]

    cluster.brokers[last_out].start()
    wait_until(lambda: view(cluster)["leader"] == last_out, timeout=60)
    state = view(cluster)
    assert leader in state["elr"]
    # No unclean election: the topic does not allow one, and the new
    # leader came from the ELR.
    assert last_out in state["isr"]
    # kafka-topics.sh shows them as Kafka 4.0 does (DescribeTopicPartitions).
    line = describe_line(cluster, last_out)
    assert f"\tLeader: {last_out}\t" in line
    assert "\tElr: " in line and "\tLastKnownElr: " in line
    elr = line.split("\tElr: ")[1].split("\t")[0]
    assert str(leader) in elr.split(",")

    # The first follower out returns (it may lack committed records, it
    # was never eligible), catches up and rejoins: the ISR is back at min ISR,
    # the high watermark moves and a consumer sees every acknowledged value.
    cluster.brokers[first_out].start()
    wait_until(lambda: len(view(cluster)["isr"]) >= 2, timeout=60)
    wait_until(lambda: view(cluster)["elr"] == [], timeout=30)
    acknowledged += produce_acknowledged(cluster.bootstrap(last_out), 100, 20)
    got = read_back(cluster.bootstrap(last_out), len(acknowledged))
    assert got[:len(acknowledged)] == acknowledged


def test_a_replica_back_from_a_crash_is_no_longer_eligible(elr_cluster):
    """KIP-966's unclean-shutdown check: the killed leader may have lost
    records it had not flushed, so when it registers again without a clean
    shutdown recorded it leaves the ELR and does not lead; the follower that
    stopped cleanly (SIGTERM records its broker epoch) still may."""
    cluster = elr_cluster
    leader, _, last_out, acknowledged = stop_followers_then_the_leader(cluster)
    assert sorted(view(cluster)["elr"]) == sorted([last_out, leader])

    cluster.brokers[leader].start()
    wait_until(lambda: any(b["id"] == leader and not b["fenced"]
                           for b in cluster.coordinator.cluster()["brokers"]), timeout=60)
    state = view(cluster)
    assert state["leader"] == -1
    assert state["elr"] == [last_out]
    assert leader in state["last_known_elr"]

    cluster.brokers[last_out].start()
    wait_until(lambda: view(cluster)["leader"] == last_out, timeout=60)
    got = read_back(cluster.bootstrap(last_out), len(acknowledged))
    assert got[:len(acknowledged)] == acknowledged


def test_with_the_feature_off_the_returning_follower_waits_for_the_last_isr_member(
        plain_cluster):
    cluster = plain_cluster
    leader, _, last_out, _ = stop_followers_then_the_leader(cluster)
    state = view(cluster)
    assert state["isr"] == [leader]
    assert state["elr"] == []
    cluster.brokers[last_out].start()
    # Registered and unfenced, it still does not lead.
    wait_until(lambda: any(b["id"] == last_out and not b["fenced"]
                           for b in cluster.coordinator.cluster()["brokers"]), timeout=60)
    assert view(cluster)["leader"] == -1
    # Not tracked: the describe has Kafka 3's columns only.
    assert "Elr:" not in describe_line(cluster, last_out)


def test_when_every_replica_crashed_the_last_leader_leads_and_nothing_acknowledged_is_lost(
        elr_cluster):
    """Every replica is killed: each comes back from a crash and leaves the
    ELR, so no replica may lead cleanly again. Kafka's balanced recovery
    then elects the last known leader, which holds the most of the log,
    instead of leaving the partition offline for good; but not while a
    replica that may return cleanly is still eligible."""
    cluster = elr_cluster
    leader, first_out, last_out, acknowledged = stop_followers_then_the_leader(
        cluster, crash_followers=True)
    state = view(cluster)
    assert sorted(state["elr"]) == sorted([last_out, leader])
    assert state["last_known_elr"] == [leader]

    # The last leader returns first: the last follower out is still
    # eligible, so the last leader waits for it.
    cluster.brokers[leader].start()
    wait_until(lambda: any(b["id"] == leader and not b["fenced"]
                           for b in cluster.coordinator.cluster()["brokers"]), timeout=60)
    state = view(cluster)
    assert (state["leader"], state["elr"]) == (-1, [last_out])

    # It crashed too: the ELR empties and the last leader leads.
    cluster.brokers[last_out].start()
    wait_until(lambda: view(cluster)["leader"] == leader, timeout=60)
    assert view(cluster)["last_known_elr"] == []
    line = describe_line(cluster, leader)
    assert f"\tLeader: {leader}\t" in line

    # Everyone back in sync; every acknowledged value is there, once, in
    # order, and acks=all works again.
    cluster.brokers[first_out].start()
    wait_until(lambda: len(view(cluster)["isr"]) == 3, timeout=90)
    acknowledged += produce_acknowledged(cluster.bootstrap(leader), 100, 20)
    got = read_back(cluster.bootstrap(leader), len(acknowledged))
    assert got == acknowledged
