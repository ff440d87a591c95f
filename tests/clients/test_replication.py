"""Replicated partitions on three brokers (replication.factor=3,
min.insync.replicas=2): followers fetch from the leader, acks=all is
answered once the ISR has the batch, the ISR shrinks when a follower dies
and grows when it is back, and the controller elects the new leader from
the ISR when the leader is killed, losing nothing acknowledged; the old
leader, restarted, cuts what it had that was never committed (where its
log diverges from the new leader's) and catches up."""
import re
import signal
import threading
import time
import urllib.request

import pytest
from confluent_kafka import Consumer as CKConsumer
from confluent_kafka import Producer as CKProducer
from confluent_kafka import OFFSET_BEGINNING
from confluent_kafka import TopicPartition as CKTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaProducer
from kafka.errors import NotEnoughReplicasAfterAppendError, NotEnoughReplicasError

from test_brokers import CLIENTS, TOPIC_PARTITIONS, Cluster, values_for
from test_coordinator import wait_until

TOPIC = "replicated"
PARTITIONS = 3
# Short, so that a dead follower leaves the ISR within the test's time.
LAG_MS = 3000


@pytest.fixture
def replicated(tmp_path):
    c = Cluster(tmp_path)
    try:
        for broker_id, rack in enumerate(["rack-a", "rack-b", "rack-c"]):
            broker = c.add_broker(broker_id, rack=rack, start=False)
            broker.extra += ["--override", f"replica.lag.time.max.ms={LAG_MS}"]
            broker.start()
        admin = AdminClient({"bootstrap.servers": c.bootstrap(0)})
        created = admin.create_topics([NewTopic(
            TOPIC, num_partitions=PARTITIONS, replication_factor=3,
            config={"min.insync.replicas": "2"})])
        created[TOPIC].result(timeout=20)
        wait_until(lambda: all(p.leader >= 0 and len(p.isrs) == 3
                               for p in partitions(c, 0).values()), timeout=20)
        yield c
    finally:
        c.stop_all()


def partitions(cluster, via):
    """Partition id -> librdkafka's PartitionMetadata (leader, replicas, isrs)."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap(via)})
    return admin.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions


def live(cluster):
    return [i for i, b in cluster.brokers.items() if b.proc is not None]


def log_bytes(cluster, broker_id, partition):
    directory = cluster.brokers[broker_id].data_dir / f"{TOPIC}-{partition}"
    return sum(f.stat().st_size for f in directory.glob("*.log"))


def metrics(cluster, broker_id):
    """The broker's unlabelled Prometheus samples, name -> value."""
    url = f"http://127.0.0.1:{cluster.brokers[broker_id].admin_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        lines = response.read().decode().splitlines()
    return {name: float(value) for name, _, value in
            (line.partition(" ") for line in lines if line and not line.startswith("#"))
            if "{" not in name}


def labelled(cluster, broker_id, name):
    """The broker's samples of metric `name`, labels -> value."""
    url = f"http://127.0.0.1:{cluster.brokers[broker_id].admin_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        lines = response.read().decode().splitlines()
    return {line[len(name) + 1:line.index("}")]: float(line.rsplit(" ", 1)[1])
            for line in lines if line.startswith(name + "{")}


def confluent_produce(bootstrap, values_by_partition, idempotent=True, acks="all"):
    """Produces; returns partition -> [(offset, value)] acknowledged."""
    acknowledged = {}

    def delivered(error, message):
        if error is None:
            acknowledged.setdefault(message.partition(), []).append(
                (message.offset(), message.value()))

    producer = CKProducer({"bootstrap.servers": bootstrap, "acks": acks,
                           "enable.idempotence": idempotent, "linger.ms": 5})
    for partition, values in values_by_partition.items():
        for value in values:
            producer.produce(TOPIC, value, partition=partition, on_delivery=delivered)
            producer.poll(0)
    assert producer.flush(60) == 0
    return acknowledged


def consume_all(bootstrap, expected_counts, timeout=30):
    """partition -> [(offset, value)] from the beginning, as librdkafka reads them."""
    consumer = CKConsumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                           "enable.auto.commit": False})
    consumer.assign([CKTopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in expected_counts])
    got, deadline = {p: [] for p in expected_counts}, time.time() + timeout
    while time.time() < deadline and any(len(got[p]) < n for p, n in expected_counts.items()):
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            got[message.partition()].append((message.offset(), message.value()))
    consumer.close()
    return got


def test_acks_all_reaches_every_replica_and_reads_back_exactly_once_in_order(replicated):
    values = {p: [f"ck-{p}-{i}".encode() for i in range(200)] for p in range(PARTITIONS)}
    acknowledged = confluent_produce(replicated.bootstrap(0), values)
    assert {p: [v for _, v in acks] for p, acks in acknowledged.items()} == values

    producer = KafkaProducer(bootstrap_servers=replicated.bootstrap(1), acks="all")
    more = {p: [f"kp-{p}-{i}".encode() for i in range(50)] for p in range(PARTITIONS)}
    for p, vs in more.items():
        for v in vs:
            producer.send(TOPIC, v, partition=p)
    producer.flush(timeout=30)
    producer.close()

    # Every broker's log of every partition holds the same bytes: the
    # followers appended the leader's batches as they are.
    wait_until(lambda: all(
        len({log_bytes(replicated, b, p) for b in range(3)}) == 1 and log_bytes(replicated, 0, p) > 0
        for p in range(PARTITIONS)), timeout=20)

    got = consume_all(replicated.bootstrap(2), {p: 250 for p in range(PARTITIONS)})
    for p in range(PARTITIONS):
        assert [v for _, v in got[p]] == values[p] + more[p]
        assert [o for o, _ in got[p]] == list(range(250))


def test_a_killed_follower_leaves_the_isr_and_rejoins_when_back(replicated):
    leader = partitions(replicated, 0)[0].leader
    follower = next(b for b in range(3) if b != leader)
    replicated.brokers[follower].kill9()

    # acks=all keeps working with two of three in sync (min.insync.replicas=2),
    # once the dead follower has left the ISR.
    before = time.time()
    acknowledged = confluent_produce(replicated.bootstrap(leader),
                                     {0: [f"during-{i}".encode() for i in range(50)]})
    assert len(acknowledged[0]) == 50
    assert time.time() - before < 20
    wait_until(lambda: follower not in partitions(replicated, leader)[0].isrs, timeout=20)
    shrunk = metrics(replicated, leader)
    assert shrunk["gregor_isr_shrinks_total"] >= 1
    assert shrunk["gregor_under_replicated_partitions"] >= 1
    # The leader sees how far the dead follower's log is behind: at least
    # the 50 records it never fetched.
    behind = f'topic="{TOPIC}",partition="0",replica="{follower}"'
    assert labelled(replicated, leader, "gregor_replica_lag_messages")[behind] >= 50

    replicated.brokers[follower].start()
    wait_until(lambda: sorted(partitions(replicated, leader)[0].isrs) == [0, 1, 2], timeout=30)
    wait_until(lambda: metrics(replicated, leader)["gregor_under_replicated_partitions"] == 0,
               timeout=30)
    assert metrics(replicated, leader)["gregor_isr_expands_total"] >= 1
    # The follower stated its broker epoch in its fetches (Fetch v15,
    # KIP-903), and the expansion named it to the controller.
    expansions = [line for line in replicated.brokers[leader].output().splitlines()
                  if "ISR changed" in line and "isr=[" in line]
    stated = [re.search(r"isr=\[([^\]]*)\] broker_epochs=\[([^\]]*)\]", line) for line in expansions]
    assert any(follower in [int(i) for i in m.group(1).split(", ")]
               and all(int(e) >= 0 for i, e in zip(m.group(1).split(", "), m.group(2).split(", "))
                       if int(i) == follower)
               for m in stated if m), expansions[-3:]
    acknowledged_after = confluent_produce(replicated.bootstrap(leader),
                                           {0: [f"after-{i}".encode() for i in range(20)]})
    wait_until(lambda: len({log_bytes(replicated, b, 0) for b in range(3)}) == 1, timeout=20)
    got = consume_all(replicated.bootstrap(leader), {0: 70})
    assert [v for _, v in got[0]] == [v for _, v in acknowledged[0] + acknowledged_after[0]]
    # Caught up: no lag on either side.
    wait_until(lambda: labelled(replicated, leader, "gregor_replica_lag_messages")[behind] == 0, timeout=10)
    wait_until(lambda: labelled(replicated, follower, "gregor_replica_fetcher_lag")[f'topic="{TOPIC}",partition="0"']
               == 0, timeout=10)
    assert metrics(replicated, follower)["gregor_replica_fetcher_max_lag"] == 0


def test_killing_the_leader_elects_one_from_the_isr_and_loses_nothing_acknowledged(replicated):
    leader = partitions(replicated, 0)[0].leader
    survivor = next(b for b in range(3) if b != leader)
    acknowledged, stop = [], threading.Event()

    def produce():
        def delivered(error, message):
            if error is None:
                acknowledged.append((message.offset(), message.value()))

        producer = CKProducer({"bootstrap.servers": ",".join(
            replicated.bootstrap(b) for b in range(3)), "acks": "all",
            "enable.idempotence": True, "linger.ms": 5})
        i = 0
        while not stop.is_set():
            producer.produce(TOPIC, f"v-{i}".encode(), partition=0, on_delivery=delivered)
            producer.poll(0.01)
            i += 1
        producer.flush(60)

    thread = threading.Thread(target=produce)
    thread.start()
    try:
        wait_until(lambda: len(acknowledged) >= 100, timeout=20)
        replicated.brokers[leader].kill9()
        wait_until(lambda: partitions(replicated, survivor)[0].leader not in (-1, leader),
                   timeout=30)
        count = len(acknowledged)
        wait_until(lambda: len(acknowledged) >= count + 100, timeout=40)
    finally:
        stop.set()
        thread.join(timeout=90)
    new_leader = partitions(replicated, survivor)[0]
    assert new_leader.leader != leader
    assert leader not in new_leader.isrs

    got = consume_all(replicated.bootstrap(survivor), {0: len(acknowledged)})
    read = dict(got[0])
    # Every acknowledged message is there, at the offset it was acknowledged at,
    # exactly once.
    assert all(read.get(offset) == value for offset, value in acknowledged)
    values = [v for _, v in got[0]]
    assert len(values) == len(set(values))

    # The old leader comes back from its data directory: it cuts its log
    # where it diverges from the new leader's (whatever it had that was
    # never committed goes), fetches from the new leader and rejoins the
    # ISR with a copy identical to the others'.
    replicated.brokers[leader].start()
    wait_until(lambda: leader in partitions(replicated, survivor)[0].isrs, timeout=40)
    wait_until(lambda: len({log_bytes(replicated, b, 0) for b in range(3)}) == 1, timeout=20)


def test_a_consumer_never_reads_past_the_high_watermark(replicated):
    leader = partitions(replicated, 0)[1].leader
    for follower in (b for b in range(3) if b != leader):
        replicated.brokers[follower].kill9()
    # acks=1: the leader's write is enough for the producer, but with the
    # dead followers still in the ISR the record is not committed.
    acknowledged = confluent_produce(replicated.bootstrap(leader), {1: [b"uncommitted"]},
                                     idempotent=False, acks="1")
    offset = acknowledged[1][0][0]
    consumer = CKConsumer({"bootstrap.servers": replicated.bootstrap(leader),
                           "group.id": "unused", "enable.auto.commit": False})
    low, high = consumer.get_watermark_offsets(CKTopicPartition(TOPIC, 1), timeout=5)
    assert high == offset
    consumer.assign([CKTopicPartition(TOPIC, 1, offset)])
    message = consumer.poll(1.0)
    assert message is None or message.error()
    # Once the followers have left the ISR (replica.lag.time.max.ms), the
    # leader alone is the ISR and the record is committed.
    wait_until(lambda: consumer.get_watermark_offsets(
        CKTopicPartition(TOPIC, 1), timeout=5)[1] == offset + 1, timeout=20)
    message = wait_until(lambda: (lambda m: m if m is not None and not m.error() else None)(
        consumer.poll(0.5)), timeout=10)
    assert (message.offset(), message.value()) == (offset, b"uncommitted")
    consumer.close()


def test_sigterm_moves_leadership_to_an_isr_member_at_once(replicated):
    leader = partitions(replicated, 0)[0].leader
    survivor = next(b for b in range(3) if b != leader)
    before = confluent_produce(replicated.bootstrap(leader), {0: [b"before"]})
    replicated.brokers[leader].stop(signal.SIGTERM)
    # Controlled shutdown: the controller elects from the ISR right away,
    # not after the 9 s session timeout.
    started = time.time()
    wait_until(lambda: partitions(replicated, survivor)[0].leader not in (-1, leader), timeout=8)
    assert time.time() - started < 5
    after = confluent_produce(replicated.bootstrap(survivor), {0: [b"after"]})
    got = consume_all(replicated.bootstrap(survivor), {0: 2})
    assert got[0] == before[0] + after[0]


def test_acks_all_below_min_insync_replicas_is_refused_after_and_before_the_append(replicated):
    leader = partitions(replicated, 0)[2].leader
    for follower in (b for b in range(3) if b != leader):
        replicated.brokers[follower].kill9()
    producer = KafkaProducer(bootstrap_servers=replicated.bootstrap(leader), acks="all", retries=0)
    # Appended while the ISR still counted the dead followers; committed only
    # once they left it, leaving one in-sync replica of the two required.
    with pytest.raises(NotEnoughReplicasAfterAppendError):
        producer.send(TOPIC, b"written-not-replicated", partition=2).get(timeout=30)
    wait_until(lambda: partitions(replicated, leader)[2].isrs == [leader], timeout=20)
    with pytest.raises(NotEnoughReplicasError):
        producer.send(TOPIC, b"refused", partition=2).get(timeout=30)
    producer.close()


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_every_client_produces_and_consumes_a_replicated_topic(replicated, client):
    """Each client library (kafka-python also at api_version 0.10.1, whose
    Fetch v3 records are down-converted) reads back through the high
    watermark what it wrote to three replicas."""
    topic = f"rf3-{client.replace('.', '-')}"
    admin = AdminClient({"bootstrap.servers": replicated.bootstrap(0)})
    admin.create_topics([NewTopic(topic, num_partitions=TOPIC_PARTITIONS, replication_factor=3,
                                  config={"min.insync.replicas": "2"})])[topic].result(timeout=20)
    wait_until(lambda: all(p.leader >= 0 for p in admin.list_topics(topic, timeout=10)
                           .topics[topic].partitions.values()), timeout=20)
    got = CLIENTS[client](replicated.bootstrap(1), topic)
    assert got == {p: values_for(p) for p in range(TOPIC_PARTITIONS)}


def test_a_follower_behind_the_leaders_log_start_starts_again_there(replicated):
    leader = partitions(replicated, 0)[0].leader
    follower = next(b for b in range(3) if b != leader)
    replicated.brokers[follower].kill9()
    acknowledged = confluent_produce(replicated.bootstrap(leader),
                                     {0: [f"m-{i}".encode() for i in range(40)]})
    # DeleteRecords on the leader: what the follower lacks below 30 is gone.
    admin = AdminClient({"bootstrap.servers": replicated.bootstrap(leader)})
    (future,) = admin.delete_records([CKTopicPartition(TOPIC, 0, 30)]).values()
    assert future.result(10).low_watermark == 30
    replicated.brokers[follower].start()
    wait_until(lambda: sorted(partitions(replicated, leader)[0].isrs) == [0, 1, 2], timeout=30)
    # The follower continues from the leader's log start and holds the rest.
    directory = replicated.brokers[follower].data_dir / f"{TOPIC}-0"
    assert (directory / "log-start-offset").read_text().strip() == "30"
    replicated.brokers[leader].stop(signal.SIGTERM)
    wait_until(lambda: partitions(replicated, follower)[0].leader not in (-1, leader), timeout=10)
    survivor_leader = partitions(replicated, follower)[0].leader
    got = consume_all(replicated.bootstrap(survivor_leader), {0: 10})
    assert [v for _, v in got[0]] == [v for o, v in acknowledged[0] if o >= 30]
