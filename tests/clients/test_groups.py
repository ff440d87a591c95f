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
def test_kafka_python_group_commits_and_resumes(fast_broker, api_version):
    topic = "tutorial"
    produce(fast_broker.bootstrap, topic, [f"a{i}".encode() for i in range(20)])
    extra = {"api_version": api_version} if api_version else {}

    def consumer():
        return KafkaConsumer(
            topic,
            bootstrap_servers=fast_broker.bootstrap,
            group_id="tutorial-group",
            enable_auto_commit=True,
            auto_offset_reset="earliest",
            **extra,
        )

    first = consumer()
    got = read_until_idle(first, 20)
    first.close()
    assert sorted(r.value for r in got) == sorted(f"a{i}".encode() for i in range(20))

    produce(fast_broker.bootstrap, topic, [f"b{i}".encode() for i in range(7)])
    second = consumer()
    got = read_until_idle(second, 7)
    second.close()
    assert sorted(r.value for r in got) == sorted(f"b{i}".encode() for i in range(7))
