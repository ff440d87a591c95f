"""Consumer groups against the real broker: the classic group protocol
(join, sync, heartbeat, leave), committed offsets and their durability,
and the admin APIs (ListGroups, DescribeGroups, DeleteGroups)."""
import asyncio
import subprocess
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

# Groups form at once instead of after Kafka's 3 s initial delay.
FAST_GROUPS = ["--override", "group.initial.rebalance.delay.ms=0"]


@pytest.fixture
def fast_broker(make_broker):
    return make_broker(FAST_GROUPS)


def produce(bootstrap, topic, values, partitions=None):
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for i, value in enumerate(values):
        partition = None if partitions is None else i % partitions
        producer.send(topic, value, partition=partition)
    producer.flush()
    producer.close()


def create_topic(bootstrap, topic, partitions):
    from kafka.admin import NewTopic
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, partitions, 1)])
    admin.close()


def read_until_idle(consumer, expected, timeout=30):
    got = []
    deadline = time.time() + timeout
    while time.time() < deadline and len(got) < expected:
        for records in consumer.poll(timeout_ms=500).values():
            got.extend(records)
    # Anything more than expected would be a duplicate; give it a moment.
    for records in consumer.poll(timeout_ms=1000).values():
        got.extend(records)
    return got


@pytest.mark.parametrize("api_version", [(0, 10, 1), None])
def test_kafka_python_group_commits_and_resumes(broker, api_version):
    """The tutorial's consumer: 20 messages, stop, 5 more, a second run reads
    exactly those 5, and a new group reads all 25. The default broker: the
    first rebalance waits out Kafka's initial delay."""
    import json
    topic = "tutorial"
    produce(broker.bootstrap, topic, [json.dumps({"n": i}).encode() for i in range(20)])
    extra = {"api_version": api_version} if api_version else {}

    def consumer(group):
        return KafkaConsumer(
            topic,
            bootstrap_servers=broker.bootstrap,
            group_id=group,
            enable_auto_commit=True,
            auto_commit_interval_ms=1000,
            auto_offset_reset="earliest",
            value_deserializer=lambda v: json.loads(v.decode("utf-8")),
            **extra,
        )

    first = consumer("tutorial-group")
    got = read_until_idle(first, 20)
    first.close()
    assert sorted(r.value["n"] for r in got) == list(range(20))

    produce(broker.bootstrap, topic, [json.dumps({"n": i}).encode() for i in range(20, 25)])
    second = consumer("tutorial-group")
    got = read_until_idle(second, 5)
    second.close()
    assert sorted(r.value["n"] for r in got) == list(range(20, 25))

    fresh = consumer("another-group")
    got = read_until_idle(fresh, 25)
    fresh.close()
    assert sorted(r.value["n"] for r in got) == list(range(25))


KILLED_MEMBER = """
import sys, time
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "killed",
              "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
              "auto.offset.reset": "earliest"})
c.subscribe(["orphaned"])
while True:
    c.poll(0.1)
    if c.assignment():
        print(",".join(str(p.partition) for p in c.assignment()), flush=True)
        break
while True:
    c.poll(0.1)
"""


def test_killed_consumers_partitions_move_after_its_session_times_out(fast_broker):
    import sys
    create_topic(fast_broker.bootstrap, "orphaned", 4)
    victim = subprocess.Popen([sys.executable, "-c", KILLED_MEMBER, fast_broker.bootstrap],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert victim.stdout.readline().strip()
        survivor = confluent_consumer(fast_broker.bootstrap, "killed")
        survivor.subscribe(["orphaned"])
        deadline = time.time() + 20
        shared = False
        while time.time() < deadline and not shared:
            survivor.poll(0.1)
            shared = 0 < len(survivor.assignment()) < 4
        assert shared, "the group never split the partitions"
        victim.kill()  # no LeaveGroup: only the session timeout can tell
        killed_at = time.time()
        while time.time() < killed_at + 20 and len(survivor.assignment()) < 4:
            survivor.poll(0.1)
        assert {p.partition for p in survivor.assignment()} == {0, 1, 2, 3}
        # Not before the 6 s session timeout has passed.
        assert time.time() - killed_at > 5
        survivor.close()
    finally:
        victim.kill()
        victim.wait()


def confluent_consumer(bootstrap, group, **extra):
    from confluent_kafka import Consumer
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        **extra,
    })


def poll_consume(consumer, into, seconds):
    """Polls for `seconds`, committing each message synchronously."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        m = consumer.poll(0.1)
        if m is None or m.error():
            continue
        into.append((m.partition(), m.offset()))
        consumer.commit(message=m, asynchronous=False)


def test_two_confluent_consumers_share_partitions_and_hand_over(fast_broker):
    from confluent_kafka import TopicPartition
    create_topic(fast_broker.bootstrap, "shared", 4)
    a = confluent_consumer(fast_broker.bootstrap, "sharing")
    b = confluent_consumer(fast_broker.bootstrap, "sharing")
    a.subscribe(["shared"])
    b.subscribe(["shared"])
    deadline = time.time() + 30
    while time.time() < deadline:
        a.poll(0.1)
        b.poll(0.1)
        mine = {p.partition for p in a.assignment()}
        theirs = {p.partition for p in b.assignment()}
        if mine and theirs and not mine & theirs and mine | theirs == {0, 1, 2, 3}:
            break
    assert mine and theirs and not mine & theirs and mine | theirs == {0, 1, 2, 3}

    produce(fast_broker.bootstrap, "shared", [f"m{i}".encode() for i in range(100)], partitions=4)
    got_a, got_b = [], []
    deadline = time.time() + 30
    while len(got_a) + len(got_b) < 100 and time.time() < deadline:
        poll_consume(a, got_a, 0.3)
        poll_consume(b, got_b, 0.3)
    assert {p for p, _ in got_a} <= mine
    assert {p for p, _ in got_b} <= theirs

    produce(fast_broker.bootstrap, "shared", [f"n{i}".encode() for i in range(100)], partitions=4)
    poll_consume(b, got_b, 0.5)
    b.close()
    deadline = time.time() + 30
    while len(got_a) + len(got_b) < 200 and time.time() < deadline:
        poll_consume(a, got_a, 0.5)
    poll_consume(a, got_a, 1.0)
    assert {p.partition for p in a.assignment()} == {0, 1, 2, 3}
    everything = got_a + got_b
    assert len(everything) == 200
    assert len(set(everything)) == 200, "a message was consumed twice"
    committed = a.committed([TopicPartition("shared", p) for p in range(4)], timeout=10)
    assert sum(tp.offset for tp in committed) == 200
    a.close()


def test_aiokafka_group_commits_and_resumes(fast_broker):
    from aiokafka import AIOKafkaConsumer

    async def consume(expected):
        consumer = AIOKafkaConsumer(
            "aio-group", bootstrap_servers=fast_broker.bootstrap, group_id="aio",
            enable_auto_commit=False, auto_offset_reset="earliest",
        )
        await consumer.start()
        got = []
        try:
            deadline = time.time() + 30
            while len(got) < expected and time.time() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    got.extend(r.value for r in records)
            await consumer.commit()
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                got.extend(r.value for r in records)
        finally:
            await consumer.stop()
        return got

    produce(fast_broker.bootstrap, "aio-group", [f"x{i}".encode() for i in range(30)])
    assert sorted(asyncio.run(consume(30))) == sorted(f"x{i}".encode() for i in range(30))
    produce(fast_broker.bootstrap, "aio-group", [f"y{i}".encode() for i in range(5)])
    assert sorted(asyncio.run(consume(5))) == sorted(f"y{i}".encode() for i in range(5))


def test_committed_offsets_survive_kill_9(fast_broker):
    from confluent_kafka import TopicPartition
    create_topic(fast_broker.bootstrap, "durable-offsets", 3)
    consumer = confluent_consumer(fast_broker.bootstrap, "survivor")
    offsets = [TopicPartition("durable-offsets", p, 10 * (p + 1)) for p in range(3)]
    consumer.commit(offsets=offsets, asynchronous=False)
    consumer.close()

    fast_broker.kill9()
    fast_broker.start()
    consumer = confluent_consumer(fast_broker.bootstrap, "survivor")
    committed = consumer.committed(
        [TopicPartition("durable-offsets", p) for p in range(3)], timeout=20
    )
    consumer.close()
    assert [(tp.partition, tp.offset) for tp in committed] == [(0, 10), (1, 20), (2, 30)]


def test_kcat_balanced_consumer(fast_broker):
    lines = [f"line {i}" for i in range(10)]
    produce(fast_broker.bootstrap, "kcat-group", [line.encode() for line in lines])
    result = subprocess.run(
        ["kcat", "-b", fast_broker.bootstrap, "-G", "kcat-g", "kcat-group",
         "-X", "auto.offset.reset=earliest", "-c", "10", "-f", "%s\\n"],
        capture_output=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert sorted(result.stdout.decode().splitlines()) == sorted(lines)


def test_admin_lists_describes_and_deletes_groups(fast_broker):
    produce(fast_broker.bootstrap, "admin-groups", [b"v"])
    consumer = KafkaConsumer(
        "admin-groups", bootstrap_servers=fast_broker.bootstrap, group_id="watched",
        auto_offset_reset="earliest", client_id="watcher",
    )
    assert read_until_idle(consumer, 1)
    consumer.commit()

    admin = KafkaAdminClient(bootstrap_servers=fast_broker.bootstrap)
    listed = {g["group_id"]: g for g in admin.list_groups()}
    assert "watched" in listed
    assert listed["watched"]["protocol_type"] == "consumer"
    stable = admin.list_groups(states_filter=["Stable"])
    assert [g["group_id"] for g in stable] == ["watched"]

    described = admin.describe_groups(["watched", "never-heard-of"])
    group = described["watched"]
    assert group["group_state"] == "Stable"
    assert group["protocol_type"] == "consumer"
    assert group["protocol_data"] in ("range", "roundrobin", "sticky")
    [member] = group["members"]
    assert member["client_id"] == "watcher"
    assert member["client_host"].endswith("127.0.0.1")
    assert described["never-heard-of"]["group_state"] == "Dead"

    assert admin.delete_groups(["watched"]) == {"watched": "NonEmptyGroupError"}
    consumer.close()
    deadline = time.time() + 10
    while time.time() < deadline:
        if admin.describe_groups(["watched"])["watched"]["group_state"] == "Empty":
            break
        time.sleep(0.2)
    assert admin.delete_groups(["watched"]) == {"watched": "OK"}
    assert admin.delete_groups(["watched"]) == {"watched": "GroupIdNotFoundError"}
    assert "watched" not in {g["group_id"] for g in admin.list_groups()}
    admin.close()
