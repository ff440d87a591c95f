"""Failover with every client (issue 14): three brokers, a topic with
replication.factor=3 and min.insync.replicas=2, and real clients —
confluent-kafka (idempotent, acks=all), kafka-python (idempotent, and at
api_version (0, 10, 1), which cannot be), aiokafka and kcat — producing and
consuming in groups while a broker fails:

(a) kill -9 of the partition leader, (b) kill -9 of a follower, (c) kill -9
of the group coordinator, (d) a rolling restart (SIGTERM each broker, wait
until it is back in every ISR, next), (e) a leader paused (SIGSTOP) past
the 9 s session timeout and resumed: it steps down, refuses produces,
serves nothing the new leader does not have, and truncates.

Each client logs every operation to a history (failover_clients.py); the
chaos checker (tests/chaos/checker.py) judges it after a final read: every
acknowledged message is there exactly once at the offset it was
acknowledged at, in the order each producer sent it, nothing read
vanished, and no group's committed offset went backwards. One client per
fault in rotation, all of them through the rolling restart."""
import json
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Consumer as CKConsumer
from confluent_kafka import TopicPartition as CKTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords

from conftest import BIN, read_response, request
from failover_clients import NOT_IDEMPOTENT, History, Workload
from test_brokers import Cluster
from test_coordinator import wait_until
from test_replicated_offsets import OFFSETS_PARTITIONS, OFFSETS_TOPIC, offsets_partition

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chaos"))
import checker  # noqa: E402
import workload as chaos_workload  # noqa: E402

TOPIC = "failover"
PARTITIONS = 3
# Broker 2 leads no partition of the topic: killing it kills a follower only.
ASSIGNMENT = [[0, 1, 2], [1, 0, 2], [0, 2, 1]]
BROKER_OVERRIDES = [
    # A dead follower leaves the ISR in 3 s rather than Kafka's 30 s.
    "replica.lag.time.max.ms=3000",
    f"offsets.topic.num.partitions={OFFSETS_PARTITIONS}",
    "group.initial.rebalance.delay.ms=0",
]
NOT_LEADER_OR_FOLLOWER = 6
FENCED_LEADER_EPOCH = 74
LIVENESS_WINDOW_S = 60.0


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    c.workloads = []
    try:
        for broker_id in range(3):
            broker = c.add_broker(broker_id, start=False)
            for override in BROKER_OVERRIDES:
                broker.extra += ["--override", override]
            broker.start()
        admin = AdminClient({"bootstrap.servers": bootstrap(c)})
        admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replica_assignment=ASSIGNMENT,
                                      config={"min.insync.replicas": "2"})])[TOPIC].result(20)
        # The offsets topic exists (a group lookup creates it) and is in sync
        # before any fault, so the groups' coordinators are known.
        consumer = CKConsumer({"bootstrap.servers": bootstrap(c), "group.id": "warm-up"})
        wait_until(lambda: consumer.committed([CKTopicPartition(TOPIC, 0)], timeout=5) is not None,
                   timeout=30)
        consumer.close()
        wait_until(lambda: in_sync(c, range(3)), timeout=30)
        yield c
    finally:
        for workload in c.workloads:
            workload.abandon()
        c.stop_all()


def bootstrap(cluster):
    return ",".join(b.bootstrap for b in cluster.brokers.values())


def live(cluster):
    return [i for i, b in cluster.brokers.items() if b.proc is not None]


def partitions(cluster, topic, via=None):
    """Partition -> librdkafka's PartitionMetadata, as `via` (default: any
    live broker) sees it."""
    servers = cluster.brokers[via].bootstrap if via is not None else \
        ",".join(cluster.brokers[b].bootstrap for b in live(cluster))
    found = AdminClient({"bootstrap.servers": servers}).list_topics(topic, timeout=10).topics.get(topic)
    return {} if found is None or found.error else found.partitions


def leader_of(cluster, partition, via=None):
    return partitions(cluster, TOPIC, via)[partition].leader


def in_sync(cluster, brokers):
    """Every partition of the topic and of the offsets topic has a leader
    and `brokers` in its ISR."""
    for topic, count in ((TOPIC, PARTITIONS), (OFFSETS_TOPIC, OFFSETS_PARTITIONS)):
        found = partitions(cluster, topic)
        if len(found) != count or any(p.leader < 0 or not set(brokers) <= set(p.isrs)
                                      for p in found.values()):
            return False
    return True


def coordinator(cluster, group):
    """The broker leading the group's offsets partition (-1: none)."""
    return partitions(cluster, OFFSETS_TOPIC)[offsets_partition(group)].leader


def group_names(cluster, clients, want):
    """A group per client whose coordinator satisfies `want(broker)`."""
    candidates = (f"failover-{i}" for i in range(1000))
    return {client: next(g for g in candidates if want(coordinator(cluster, g)))
            for client in clients}


class Nemesis:
    """Logs faults and heals as the chaos harness's nemesis does."""

    def __init__(self, history):
        self.history = history

    def fault(self, name, node):
        self.history.log("nemesis", "info", "fault", fault=name, node=node)

    def heal(self, name, node):
        self.history.log("nemesis", "info", "heal", fault=name, node=node)


def progress(history, count=20, partitions=range(PARTITIONS), timeout=60):
    """Waits until every producer has `count` more acknowledgements on each
    of `partitions`, and the group members have read `count` more records."""
    producers = {op["process"] for op in history.ops
                 if op["f"] == "send" and not op["process"].startswith("stale-")}
    before = {(p, q): history.acknowledged(q, p) for p in producers for q in partitions}
    read = history.read()
    wait_until(lambda: all(history.acknowledged(q, p) >= n + count for (p, q), n in before.items())
               and history.read() >= read + count, timeout=timeout, interval=0.2)


def start(cluster, tmp_path, clients, groups=None):
    history = History(tmp_path / "history.jsonl")
    workload = Workload(history, bootstrap(cluster), TOPIC, PARTITIONS, clients, groups)
    cluster.workloads.append(workload)
    workload.start()
    progress(history, timeout=90)
    return history, workload


def acknowledged_values(history):
    return {(op["partition"], op["value"]) for op in history.ops
            if op["f"] == "send" and op["type"] == "ok"}


def read_values(history, process):
    return {(op["partition"], value) for op in history.ops
            if op["f"] == "poll" and op["type"] == "ok" and op["process"] == process
            for _, value in op["records"]}


def finish(cluster, history, workload):
    """Stops the producers, waits until every group member has read every
    acknowledged message and every group has committed the end of each
    partition, stops the rest, reads every partition from the start and
    runs the chaos checker's checks over the history."""
    workload.stop_producers()
    acknowledged = acknowledged_values(history)
    for member in workload.members():
        wait_until(lambda: acknowledged <= read_values(history, member.process), timeout=90,
                   interval=0.5)
    ends = {p: end_offset(cluster, p) for p in range(PARTITIONS)}
    wait_until(lambda: all(committed(cluster, group) == ends for group in workload.groups.values()),
               timeout=60, interval=0.5)
    workload.stop()
    history.close()

    needed = {}
    for op in history.ops:
        if op["f"] == "send" and op["type"] == "ok":
            needed[op["partition"]] = max(needed.get(op["partition"], 0), op["offset"] + 1)
    _, covered = chaos_workload.final_read(bootstrap(cluster), TOPIC, PARTITIONS, needed,
                                           str(history.path))
    assert covered, f"the final read ends before an acknowledged offset: {needed}"
    results = checker.check_all(checker.load_history(history.path),
                                liveness_window_s=LIVENESS_WINDOW_S)
    # A producer that cannot be idempotent writes a batch twice when it
    # retries one the broker had written but whose answer was lost.
    skipped = {"no_duplicates"} if NOT_IDEMPOTENT & set(workload.groups) else set()
    failures = [f"{r.name}: {a.message}" for r in results if r.name not in skipped
                for a in r.anomalies]
    assert not failures, "\n".join(failures[:20])
    assert all(r.checked for r in results if r.name in ("no_lost_writes", "commits_monotonic"))
    return ends


def end_offset(cluster, partition):
    consumer = CKConsumer({"bootstrap.servers": bootstrap(cluster), "group.id": "ends"})
    try:
        return consumer.get_watermark_offsets(CKTopicPartition(TOPIC, partition), timeout=10,
                                              cached=False)[1]
    finally:
        consumer.close()


def committed(cluster, group):
    consumer = CKConsumer({"bootstrap.servers": bootstrap(cluster), "group.id": group})
    try:
        found = consumer.committed([CKTopicPartition(TOPIC, p) for p in range(PARTITIONS)],
                                   timeout=10)
        return {tp.partition: tp.offset for tp in found}
    except Exception:  # noqa: BLE001 - the coordinator is moving
        return None
    finally:
        consumer.close()


def log_bytes(cluster, broker_id, partition):
    directory = cluster.brokers[broker_id].data_dir / f"{TOPIC}-{partition}"
    return sum(f.stat().st_size for f in directory.glob("*.log"))


# ------------------------------------------------------------------ faults

def test_killing_the_partition_leader_with_confluent_kafka(cluster, tmp_path):
    leader = leader_of(cluster, 0)
    groups = group_names(cluster, ["confluent-kafka"], lambda c: c not in (-1, leader))
    history, workload = start(cluster, tmp_path, ["confluent-kafka"], groups)
    nemesis = Nemesis(history)

    nemesis.fault("kill", leader)
    cluster.brokers[leader].kill9()
    wait_until(lambda: leader_of(cluster, 0) not in (-1, leader), timeout=40)
    progress(history)
    cluster.brokers[leader].start()
    wait_until(lambda: in_sync(cluster, range(3)), timeout=60)
    nemesis.heal("kill", leader)
    progress(history)
    finish(cluster, history, workload)


def test_killing_a_follower_with_kafka_python_0_10_1(cluster, tmp_path):
    """kafka-python at api_version (0, 10, 1): Produce v2 and Fetch v3 (the
    batches down-converted to message sets), JoinGroup v1, OffsetCommit v2."""
    follower = 2  # leads nothing (ASSIGNMENT)
    clients = ["kafka-python-0.10.1"]
    groups = group_names(cluster, clients, lambda c: c not in (-1, follower))
    history, workload = start(cluster, tmp_path, clients, groups)
    nemesis = Nemesis(history)

    nemesis.fault("kill", follower)
    cluster.brokers[follower].kill9()
    # acks=all goes on with two replicas in sync once the dead one is out.
    wait_until(lambda: all(follower not in p.isrs for p in partitions(cluster, TOPIC).values()),
               timeout=30)
    progress(history)
    cluster.brokers[follower].start()
    wait_until(lambda: in_sync(cluster, range(3)), timeout=60)
    nemesis.heal("kill", follower)
    progress(history)
    finish(cluster, history, workload)


def test_killing_the_group_coordinator_with_aiokafka(cluster, tmp_path):
    # Broker 2 leads no partition of the topic: its death moves the group only.
    groups = group_names(cluster, ["aiokafka"], lambda c: c == 2)
    history, workload = start(cluster, tmp_path, ["aiokafka"], groups)
    nemesis = Nemesis(history)
    group = groups["aiokafka"]
    victim = coordinator(cluster, group)

    nemesis.fault("kill", victim)
    cluster.brokers[victim].kill9()
    wait_until(lambda: coordinator(cluster, group) not in (-1, victim), timeout=40)
    progress(history)
    cluster.brokers[victim].start()
    wait_until(lambda: in_sync(cluster, range(3)), timeout=60)
    nemesis.heal("kill", victim)
    progress(history)
    finish(cluster, history, workload)


def test_a_rolling_restart_with_every_client(cluster, tmp_path):
    clients = ["confluent-kafka", "kafka-python", "aiokafka", "kcat"]
    history, workload = start(cluster, tmp_path, clients)
    nemesis = Nemesis(history)
    for broker_id in range(3):
        nemesis.fault("terminate", broker_id)
        assert cluster.brokers[broker_id].stop(signal.SIGTERM, timeout=30) == 0
        cluster.brokers[broker_id].start()
        wait_until(lambda: in_sync(cluster, range(3)), timeout=60)
        nemesis.heal("terminate", broker_id)
        progress(history, count=10)
    finish(cluster, history, workload)


# --------------------------------------------------- (e) the paused leader

def record_batch(values):
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=1 << 20)
    for i, value in enumerate(values):
        builder.append(i, timestamp=None, key=None, value=value, headers=[])
    return bytes(builder.build())


def produce_v3(partition, value, acks):
    batch = record_batch([value])
    name = TOPIC.encode()
    body = struct.pack(">hhi", -1, acks, 5000)         # transactional id null, acks, timeout
    body += struct.pack(">ih", 1, len(name)) + name     # one topic
    body += struct.pack(">iii", 1, partition, len(batch)) + batch
    return request(0, 3, 1, body)


def produce_v3_answer(response):
    """(error code, base offset) of the one partition."""
    at = 4 + 4                                          # correlation id, topic count
    (name_len,) = struct.unpack_from(">h", response, at)
    at += 2 + name_len + 4                              # name, partition count
    _partition, error, base_offset = struct.unpack_from(">ihq", response, at)
    return error, base_offset


def fetch_v4(partition, offset, max_wait_ms=0):
    name = TOPIC.encode()
    # replica, max wait, min bytes, max bytes, isolation
    body = struct.pack(">iiiib", -1, max_wait_ms, 1 if max_wait_ms else 0, 1 << 20, 0)
    body += struct.pack(">ih", 1, len(name)) + name
    body += struct.pack(">iqi", 1, partition, offset) + struct.pack(">i", 1 << 20)
    return request(1, 4, 2, body)


def fetch_v4_answer(response):
    """(error code, high watermark, [[offset, value], ...]) of the one partition."""
    at = 4 + 4 + 4                                      # correlation id, throttle, topic count
    (name_len,) = struct.unpack_from(">h", response, at)
    at += 2 + name_len + 4                              # name, partition count
    _partition, error, high_watermark, _lso, aborted = struct.unpack_from(">ihqqi", response, at)
    at += 4 + 2 + 8 + 8 + 4 + 16 * max(aborted, 0)
    (size,) = struct.unpack_from(">i", response, at)
    records = MemoryRecords(response[at + 4:at + 4 + max(size, 0)])
    got = []
    while (batch := records.next_batch()) is not None:
        got += [[r.offset, r.value.decode()] for r in batch]
    return error, high_watermark, got


def stale_produce(history, broker, value, acks, connection=None):
    """A Produce to the old leader, logged as a send: `ok` at its offset if
    it was accepted, `fail` (certainly not written) if refused."""
    fields = dict(topic=TOPIC, partition=0, value=value)
    history.log("stale-producer", "invoke", "send", **fields)
    with connection or socket.create_connection(("127.0.0.1", broker.port), timeout=30) as s:
        if connection is None:
            s.sendall(produce_v3(0, value.encode(), acks))
        error, offset = produce_v3_answer(read_response(s))
    if error == 0:
        history.log("stale-producer", "ok", "send", offset=offset, **fields)
    else:
        history.log("stale-producer", "fail", "send", error=error, **fields)
    return error


def stale_fetch(history, broker, connection=None):
    """A Fetch from offset 0 at the old leader; what it returned is logged
    as a read, so the checker holds it to the final read."""
    with connection or socket.create_connection(("127.0.0.1", broker.port), timeout=30) as s:
        if connection is None:
            s.sendall(fetch_v4(0, 0))
        error, high_watermark, records = fetch_v4_answer(read_response(s))
    if records:
        history.log("stale-fetcher", "ok", "poll", topic=TOPIC, partition=0, mode="fetch",
                    records=records)
    return error, high_watermark, records


def test_a_paused_leader_steps_down_serves_nothing_stale_and_truncates_with_kcat(cluster, tmp_path):
    leader = leader_of(cluster, 0)
    groups = group_names(cluster, ["kcat"], lambda c: c not in (-1, leader))
    history, workload = start(cluster, tmp_path, ["kcat"], groups)
    nemesis = Nemesis(history)
    old = cluster.brokers[leader]
    survivor = next(b for b in range(3) if b != leader)
    # Requests written while it is stopped wait in these connections: they
    # are the first thing it reads when it resumes, before its metadata can
    # have caught up.
    queued = {name: socket.create_connection(("127.0.0.1", old.port), timeout=30)
              for name in ("acks-1", "acks-all", "fetch")}

    nemesis.fault("pause", leader)
    old.proc.send_signal(signal.SIGSTOP)
    # Fenced after the 9 s session timeout; an ISR member leads instead and
    # takes the writes.
    wait_until(lambda: leader_of(cluster, 0, via=survivor) not in (-1, leader), timeout=40)
    progress(history, partitions=[0])
    queued["acks-1"].sendall(produce_v3(0, b"stale-acks-1", 1))
    queued["acks-all"].sendall(produce_v3(0, b"stale-acks-all", -1))
    queued["fetch"].sendall(fetch_v4(0, 0))
    old.proc.send_signal(signal.SIGCONT)

    refused = (NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH)
    assert stale_produce(history, old, "stale-acks-1", 1, queued["acks-1"]) in refused
    assert stale_produce(history, old, "stale-acks-all", -1, queued["acks-all"]) in refused
    stale_fetch(history, old, queued["fetch"])
    for i in range(5):
        assert stale_produce(history, old, f"stale-after-{i}", 1) in refused
        stale_fetch(history, old)
    # It follows the new leader, cut back to where their logs agree, and is
    # in the ISR again.
    wait_until(lambda: in_sync(cluster, range(3)), timeout=60)
    nemesis.heal("pause", leader)
    progress(history)
    finish(cluster, history, workload)
    wait_until(lambda: len({log_bytes(cluster, b, 0) for b in range(3)}) == 1, timeout=30)


def test_a_fetch_held_at_a_leader_that_moves_is_answered_not_leader(cluster, tmp_path):
    """Kafka's delayed fetch completes when its broker stops leading the
    partition: the consumer learns of the move at once, instead of an empty
    answer from the old leader when its wait runs out."""
    leader = leader_of(cluster, 0)
    other = next(b for b in ASSIGNMENT[0] if b != leader)
    old = cluster.brokers[leader]
    with socket.create_connection(("127.0.0.1", old.port), timeout=60) as held:
        # At the log end with min bytes 1: held for up to 30 s.
        held.sendall(fetch_v4(0, end_offset(cluster, 0), max_wait_ms=30_000))
        plan = tmp_path / "move.json"
        plan.write_text(json.dumps({"version": 1, "partitions": [
            {"topic": TOPIC, "partition": 0, "replicas": [other] + [b for b in ASSIGNMENT[0] if b != other]}]}))
        tool = [str(BIN), "--bootstrap-server", bootstrap(cluster)]
        moved = subprocess.run([tool[0], "reassign-partitions", *tool[1:], "--execute",
                                "--reassignment-json-file", str(plan)], capture_output=True, text=True, timeout=60)
        assert moved.returncode == 0, moved.stdout + moved.stderr
        elected = subprocess.run([tool[0], "leader-election", *tool[1:], "--election-type", "PREFERRED",
                                  "--topic", TOPIC, "--partition", "0"], capture_output=True, text=True, timeout=60)
        assert elected.returncode == 0, elected.stdout + elected.stderr
        wait_until(lambda: leader_of(cluster, 0) == other, timeout=20)
        error, _, records = fetch_v4_answer(read_response(held))
    assert (error, records) == (NOT_LEADER_OR_FOLLOWER, [])
