"""Leader epochs (KIP-101, KIP-320, KIP-595) on three brokers (RF=3,
min.insync.replicas=2): batches carry the epoch of the leader that wrote
them, each replica keeps a leader-epoch checkpoint, OffsetForLeaderEpoch
answers where an epoch ended, librdkafka validates its position with it
after a leader change, and a follower's log is cut where it diverges from
its leader's (Fetch's diverging_epoch) rather than at its high watermark,
so two leader changes in quick succession lose nothing acknowledged."""
import re
import signal
import socket
import struct
import subprocess
import time
import urllib.request

from confluent_kafka import Consumer as CKConsumer
from confluent_kafka import OFFSET_BEGINNING
from confluent_kafka import TopicPartition as CKTopicPartition
from kafka import KafkaConsumer, TopicPartition

from conftest import read_response, request
from test_coordinator import wait_until
from test_replication import TOPIC, confluent_produce, consume_all, log_bytes, partitions
from test_replication import replicated  # noqa: F401 (the fixture)

OFFSET_FOR_LEADER_EPOCH = 23
FENCED_LEADER_EPOCH = 74
UNKNOWN_LEADER_EPOCH = 75
NOT_LEADER_OR_FOLLOWER = 6
UNKNOWN_TOPIC_OR_PARTITION = 3


def labelled(cluster, broker_id, name, **labels):
    """One labelled Prometheus sample of a broker, or None."""
    url = f"http://127.0.0.1:{cluster.brokers[broker_id].admin_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{name}{{{re.escape(wanted)}}} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def epoch_checkpoint(cluster, broker_id, partition=0):
    """(epoch, start offset) pairs of a replica's leader-epoch-checkpoint."""
    path = cluster.brokers[broker_id].data_dir / f"{TOPIC}-{partition}" / "leader-epoch-checkpoint"
    lines = path.read_text().split("\n")
    assert lines[0] == "0", lines
    entries = [tuple(int(f) for f in line.split()) for line in lines[2:] if line]
    assert int(lines[1]) == len(entries)
    return entries


def offset_for_leader_epoch(port, topic, queries):
    """OffsetForLeaderEpoch v2 in raw frames: queries are (partition,
    current_leader_epoch, leader_epoch); answers (error, partition, epoch,
    end_offset)."""
    name = topic.encode()
    body = struct.pack(">ih", 1, len(name)) + name + struct.pack(">i", len(queries))
    for partition, current, epoch in queries:
        body += struct.pack(">iii", partition, current, epoch)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request(OFFSET_FOR_LEADER_EPOCH, 2, 7, body))
        response = read_response(s)
    correlation, _throttle, topics = struct.unpack_from(">iii", response, 0)
    assert (correlation, topics) == (7, 1)
    (length,) = struct.unpack_from(">h", response, 12)
    at = 14 + length
    assert response[14:at] == name
    (count,) = struct.unpack_from(">i", response, at)
    at += 4
    answers = []
    for _ in range(count):
        answers.append(struct.unpack_from(">hiiq", response, at))
        at += 18
    return answers


def replicas_of(cluster, partition=0):
    metadata = partitions(cluster, next(iter(live_ids(cluster))))[partition]
    return metadata.leader, list(metadata.replicas)


def live_ids(cluster):
    return [i for i, b in cluster.brokers.items() if b.proc is not None]


def test_batches_carry_their_leaders_epoch_and_every_replica_keeps_the_same_checkpoint(replicated):
    leader, replicas = replicas_of(replicated)
    before = confluent_produce(replicated.bootstrap(leader), {0: [b"e0-a", b"e0-b"]})[0]
    # A controlled shutdown makes another ISR member leader, one epoch on.
    replicated.brokers[leader].stop(signal.SIGTERM)
    survivor = next(b for b in replicas if b != leader)
    wait_until(lambda: partitions(replicated, survivor)[0].leader not in (-1, leader), timeout=10)
    new_leader = partitions(replicated, survivor)[0].leader
    after = confluent_produce(replicated.bootstrap(new_leader), {0: [b"e1-a"]})[0]

    consumer = CKConsumer({"bootstrap.servers": replicated.bootstrap(new_leader),
                           "group.id": "unused", "enable.auto.commit": False})
    consumer.assign([CKTopicPartition(TOPIC, 0, OFFSET_BEGINNING)])
    got = []
    deadline = time.time() + 20
    while len(got) < 3 and time.time() < deadline:
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            got.append((message.offset(), message.value(), message.leader_epoch()))
    consumer.close()
    assert got == [(before[0][0], b"e0-a", 0), (before[1][0], b"e0-b", 0), (after[0][0], b"e1-a", 1)]

    # The old leader comes back as a follower; every replica then holds the
    # same epochs: 0 from offset 0, 1 from the first offset the new leader
    # wrote.
    replicated.brokers[leader].start()
    wait_until(lambda: sorted(partitions(replicated, new_leader)[0].isrs) == [0, 1, 2], timeout=30)
    expected = [(0, 0), (1, after[0][0])]
    wait_until(lambda: all(epoch_checkpoint(replicated, b) == expected for b in range(3)),
               timeout=20)
    wait_until(lambda: len({log_bytes(replicated, b, 0) for b in range(3)}) == 1, timeout=20)


def test_offset_for_leader_epoch_answers_where_each_epoch_ended(replicated):
    leader, replicas = replicas_of(replicated)
    first = confluent_produce(replicated.bootstrap(leader), {0: [b"a", b"b", b"c"]})[0]
    replicated.brokers[leader].stop(signal.SIGTERM)
    survivor = next(b for b in replicas if b != leader)
    wait_until(lambda: partitions(replicated, survivor)[0].leader not in (-1, leader), timeout=10)
    new_leader = partitions(replicated, survivor)[0].leader
    confluent_produce(replicated.bootstrap(new_leader), {0: [b"d", b"e"]})
    epoch_one_start = first[-1][0] + 1
    port = replicated.brokers[new_leader].port

    answers = offset_for_leader_epoch(port, TOPIC, [
        (0, 1, 0),    # epoch 0 ended where epoch 1 began
        (0, 1, 1),    # the current epoch ends at the log end
        (0, -1, 7),   # an epoch newer than any: undefined
        (0, 0, 0),    # a stale current epoch
        (0, 2, 0),    # a current epoch from the future
        (9, -1, 0),   # no such partition
    ])
    assert answers == [
        (0, 0, 0, epoch_one_start),
        (0, 0, 1, epoch_one_start + 2),
        (0, 0, -1, -1),
        (FENCED_LEADER_EPOCH, 0, -1, -1),
        (UNKNOWN_LEADER_EPOCH, 0, -1, -1),
        (UNKNOWN_TOPIC_OR_PARTITION, 9, -1, -1),
    ]
    # Only the leader answers.
    follower = next(b for b in live_ids(replicated) if b != new_leader)
    assert offset_for_leader_epoch(replicated.brokers[follower].port, TOPIC, [(0, 1, 0)]) == [
        (NOT_LEADER_OR_FOLLOWER, 0, -1, -1)]


def test_librdkafka_validates_its_position_after_a_leader_change_and_other_clients_read_on(
        replicated):
    leader, replicas = replicas_of(replicated)
    bootstrap = ",".join(replicated.bootstrap(b) for b in range(3))
    first = [f"before-{i}".encode() for i in range(50)]
    confluent_produce(bootstrap, {0: first})
    consumer = CKConsumer({"bootstrap.servers": bootstrap, "group.id": "unused",
                           "enable.auto.commit": False, "topic.metadata.refresh.interval.ms": 1000})
    consumer.assign([CKTopicPartition(TOPIC, 0, OFFSET_BEGINNING)])
    got, errors = [], []

    def poll_until(count, timeout):
        deadline = time.time() + timeout
        while len(got) < count and time.time() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            if message.error():
                errors.append(message.error())
            else:
                got.append((message.offset(), message.value(), message.leader_epoch()))

    poll_until(50, 20)
    replicated.brokers[leader].stop(signal.SIGTERM)
    survivor = next(b for b in replicas if b != leader)
    wait_until(lambda: partitions(replicated, survivor)[0].leader not in (-1, leader), timeout=10)
    new_leader = partitions(replicated, survivor)[0].leader
    second = [f"after-{i}".encode() for i in range(50)]
    confluent_produce(replicated.bootstrap(new_leader), {0: second})
    poll_until(100, 30)
    consumer.close()

    assert [v for _, v, _ in got] == first + second, errors
    assert [o for o, _, _ in got] == list(range(100))
    assert {e for _, _, e in got} == {0, 1}
    assert not [e for e in errors if "truncat" in str(e).lower()]
    # librdkafka asked the new leader where the epoch of its position ended
    # (KIP-320) before fetching on.
    asked = labelled(replicated, new_leader, "gregor_requests_total", api="OffsetForLeaderEpoch")
    assert asked and asked >= 1

    # kafka-python and kcat read the same across the change.
    kp = KafkaConsumer(bootstrap_servers=replicated.bootstrap(new_leader),
                       consumer_timeout_ms=5000, enable_auto_commit=False)
    kp.assign([TopicPartition(TOPIC, 0)])
    kp.seek_to_beginning()
    assert [m.value for m in kp][:100] == first + second
    kp.close()
    out = subprocess.run(["kcat", "-C", "-b", replicated.bootstrap(new_leader), "-t", TOPIC,
                          "-p", "0", "-o", "beginning", "-e", "-q"],
                         capture_output=True, timeout=30, check=True).stdout
    assert out.split(b"\n")[:100] == first + second


def test_two_quick_leader_changes_lose_no_acknowledged_message(replicated):
    """The KIP-101 loss: the leader dies right after acknowledging, before
    its followers heard the new high watermark; the next leader dies before
    the last follower fetched from it. Cutting logs back to the high
    watermark on each leader change would drop the acknowledged message on
    the follower that ends up leading; with leader epochs nothing is cut."""
    leader, replicas = replicas_of(replicated)
    # The election takes the first ISR member in replica order.
    next_leader, last = [b for b in replicas if b != leader]
    acknowledged = confluent_produce(replicated.bootstrap(leader),
                                     {0: [f"m-{i}".encode() for i in range(20)]})[0]
    time.sleep(1.5)  # the followers learn the high watermark of these
    final = confluent_produce(replicated.bootstrap(leader), {0: [b"acknowledged-last"]})[0]
    # Within the followers' fetch wait (500 ms): neither has been told the
    # high watermark that covers the last message.
    replicated.brokers[leader].kill9()
    acknowledged += final
    (offset, _), = final
    for follower in (next_leader, last):
        high_watermark = labelled(replicated, follower, "gregor_high_watermark",
                                  topic=TOPIC, partition="0")
        assert high_watermark <= offset, (follower, high_watermark, offset)

    # The next leader freezes before the controller elects it (its lease
    # runs out after the dead leader's), so the last follower cannot fetch
    # from it; then it is fenced too and the last follower leads.
    time.sleep(4.5)
    replicated.brokers[next_leader].proc.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: partitions(replicated, last)[0].leader == last, timeout=30)
        # Two elections: epoch 1 (the frozen broker), then 2.
        assert epoch_checkpoint(replicated, last)[-1][0] == 2
        got = consume_all(replicated.bootstrap(last), {0: len(acknowledged)})
        read = dict(got[0])
        assert all(read.get(o) == v for o, v in acknowledged), (acknowledged[-3:], got[0][-3:])
        values = [v for _, v in got[0]]
        assert len(values) == len(set(values))
    finally:
        replicated.brokers[next_leader].proc.send_signal(signal.SIGCONT)

    # Both come back and follow; all three copies end up identical.
    replicated.brokers[leader].start()
    wait_until(lambda: sorted(partitions(replicated, last)[0].isrs) == [0, 1, 2], timeout=60)
    wait_until(lambda: len({log_bytes(replicated, b, 0) for b in range(3)}) == 1, timeout=20)


def test_an_uncommitted_tail_on_an_old_leader_is_cut_where_the_logs_diverge(replicated):
    leader, replicas = replicas_of(replicated)
    committed = confluent_produce(replicated.bootstrap(leader),
                                  {0: [f"c-{i}".encode() for i in range(10)]})[0]
    followers = [b for b in replicas if b != leader]
    for f in followers:
        replicated.brokers[f].proc.send_signal(signal.SIGSTOP)
    try:
        # Their fetches parked at the leader run out (500 ms) and no new
        # one comes: acks=1 is then written on the leader only, never
        # committed (the ISR still names the followers).
        time.sleep(1)
        tail = confluent_produce(replicated.bootstrap(leader),
                                 {0: [f"tail-{i}".encode() for i in range(5)]},
                                 idempotent=False, acks="1")[0]
        assert tail[0][0] == committed[-1][0] + 1
        replicated.brokers[leader].kill9()
    finally:
        for f in followers:
            replicated.brokers[f].proc.send_signal(signal.SIGCONT)
    # Frozen for less than replica.lag.time.max.ms: the ISR never shrank.

    wait_until(lambda: partitions(replicated, followers[0])[0].leader in followers, timeout=30)
    new_leader = partitions(replicated, followers[0])[0].leader
    wait_until(lambda: len(partitions(replicated, new_leader)[0].isrs) == 2, timeout=20)
    replacement = confluent_produce(replicated.bootstrap(new_leader),
                                    {0: [f"new-{i}".encode() for i in range(8)]})[0]
    # The new leader writes at the offsets the tail had on the old one.
    assert replacement[0][0] == tail[0][0]

    # The old leader returns with the tail in its log: its fetch names the
    # epoch of the tail, the new leader answers where that epoch ended for
    # it, and the tail is cut there.
    replicated.brokers[leader].start()
    wait_until(lambda: sorted(partitions(replicated, new_leader)[0].isrs) == [0, 1, 2], timeout=40)
    wait_until(lambda: len({log_bytes(replicated, b, 0) for b in range(3)}) == 1, timeout=20)
    output = replicated.brokers[leader].output()
    assert "truncated the log where it diverges from the leader's" in output
    assert "diverging_end_offset=" + str(tail[0][0]) in output

    # No consumer ever reads the tail, from any replica once it leads.
    replicated.brokers[new_leader].stop(signal.SIGTERM)
    wait_until(lambda: partitions(replicated, leader)[0].leader not in (-1, new_leader),
               timeout=10)
    got = consume_all(",".join(replicated.bootstrap(b) for b in live_ids(replicated)),
                      {0: len(committed) + len(replacement)})
    assert got[0] == committed + replacement
