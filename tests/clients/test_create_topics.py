"""CreateTopics as Kafka accepts it: manual replica assignments checked with
Kafka's codes, every documented topic config key at a valid value, values
out of range refused naming the key, and validate_only creating nothing."""
import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic
from kafka import errors as kafka_errors
from kafka.admin import KafkaAdminClient
from kafka.admin import NewTopic as KafkaPythonNewTopic

INVALID_REPLICA_ASSIGNMENT = 39
INVALID_CONFIG = 40
INVALID_REQUEST = 42
DYNAMIC_TOPIC_CONFIG = 1

# A valid value of every topic config Kafka 3.9 documents.
EVERY_TOPIC_KEY = {
    "cleanup.policy": "delete",
    "compression.gzip.level": "9",
    "compression.lz4.level": "17",
    "compression.type": "zstd",
    "compression.zstd.level": "-5",
    "delete.retention.ms": "1000",
    "file.delete.delay.ms": "0",
    "flush.messages": "10",
    "flush.ms": "1000",
    "follower.replication.throttled.replicas": "0:0",
    "index.interval.bytes": "8192",
    "leader.replication.throttled.replicas": "*",
    "local.retention.bytes": "-2",
    "local.retention.ms": "-2",
    "max.compaction.lag.ms": "600000",
    "max.message.bytes": "2000000",
    "message.downconversion.enable": "true",
    "message.format.version": "0.10.0",
    "message.timestamp.after.max.ms": "3600000",
    "message.timestamp.before.max.ms": "3600000",
    "message.timestamp.difference.max.ms": "3600000",
    "message.timestamp.type": "CreateTime",
    "min.cleanable.dirty.ratio": "0.25",
    "min.compaction.lag.ms": "1000",
    "min.insync.replicas": "1",
    "preallocate": "true",
    "remote.log.copy.disable": "false",
    "remote.log.delete.on.disable": "false",
    "remote.storage.enable": "false",
    "retention.bytes": "-1",
    "retention.ms": "86400000",
    "segment.bytes": "1048576",
    "segment.index.bytes": "4096",
    "segment.jitter.ms": "100",
    "segment.ms": "3600000",
    "unclean.leader.election.enable": "false",
}


def refusal(future):
    try:
        future.result(10)
    except KafkaException as e:
        return e.args[0]
    raise AssertionError("the request was accepted")


def round_trip(bootstrap, topic, partitions):
    producer = Producer({"bootstrap.servers": bootstrap})
    for p in range(partitions):
        producer.produce(topic, value=f"v{p}".encode(), partition=p)
    assert producer.flush(10) == 0
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": f"g-{topic}",
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe([topic])
    seen = set()
    try:
        for _ in range(100):
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                seen.add((message.partition(), message.value()))
            if len(seen) == partitions:
                break
    finally:
        consumer.close()
    assert seen == {(p, f"v{p}".encode()) for p in range(partitions)}


def test_confluent_replica_assignment_on_broker_0_is_used(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("placed", 2, replica_assignment=[[0], [0]])])["placed"].result(10)
    topic = admin.list_topics(timeout=10).topics["placed"]
    assert sorted(topic.partitions) == [0, 1]
    for partition in topic.partitions.values():
        assert (partition.leader, partition.replicas, partition.isrs) == (0, [0], [0])
    round_trip(broker.bootstrap, "placed", 2)


def test_kafka_python_replica_assignments_are_used(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        created = admin.create_topics([KafkaPythonNewTopic(
            "placed-kp", replica_assignments={0: [0], 1: [0]},
            topic_configs={"retention.ms": "1000"},
        )])
        (result,) = created["topics"]
        assert (result["error_code"], result["num_partitions"], result["replication_factor"]) == (0, 2, 1)
        # CreateTopics v5+ returns the new topic's configs, as Kafka does.
        assert result["configs"]["retention.ms"]["value"] == "1000"
        assert result["configs"]["segment.bytes"]["value"] == "1073741824"
    finally:
        admin.close()
    round_trip(broker.bootstrap, "placed-kp", 2)


@pytest.mark.parametrize("topic, code, message", [
    ({"num_partitions": 2, "assignments": {0: [0]}}, INVALID_REQUEST,
     "A manual partition assignment was specified, but numPartitions was not set to -1."),
    ({"replication_factor": 1, "assignments": {0: [0]}}, INVALID_REQUEST,
     "A manual partition assignment was specified, but replication factor was not set to -1."),
    ({"assignments": {0: [5]}}, INVALID_REPLICA_ASSIGNMENT,
     "The manual partition assignment includes broker 5, but no such broker is registered."),
    ({"assignments": {0: [0, 0]}}, INVALID_REPLICA_ASSIGNMENT,
     "The manual partition assignment includes the broker 0 more than once."),
    ({"assignments": {0: []}}, INVALID_REPLICA_ASSIGNMENT,
     "The manual partition assignment includes an empty replica list."),
    ({"assignments": {0: [0], 2: [0]}}, INVALID_REPLICA_ASSIGNMENT,
     "partitions should be a consecutive 0-based integer sequence"),
])
def test_bad_assignments_are_refused_with_kafkas_codes(broker, topic, code, message):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        response = admin.create_topics({"bad": topic}, raise_errors=False)
        (result,) = response["topics"]
        assert (result["error_code"], result["error_message"]) == (code, message)
        assert "bad" not in admin.list_topics()
    finally:
        admin.close()


def test_every_documented_topic_key_is_accepted_and_described(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("all-keys", 1, 1, config=EVERY_TOPIC_KEY)])["all-keys"].result(10)
    resource = ConfigResource(ConfigResource.Type.TOPIC, "all-keys")
    described = admin.describe_configs([resource])[resource].result(10)
    for key, value in EVERY_TOPIC_KEY.items():
        assert described[key].value == value, key
        assert described[key].source == DYNAMIC_TOPIC_CONFIG, key
    # Still an ordinary topic.
    round_trip(broker.bootstrap, "all-keys", 1)


@pytest.mark.parametrize("key, value", [
    ("compression.gzip.level", "10"),
    ("compression.type", "brotli"),
    ("delete.retention.ms", "-1"),
    ("max.compaction.lag.ms", "0"),
    ("message.format.version", "0.7"),
    ("min.cleanable.dirty.ratio", "1.5"),
    ("min.compaction.lag.ms", "-1"),
    ("remote.storage.enable", "true"),
    ("segment.index.bytes", "3"),
    ("segment.jitter.ms", "-1"),
    ("unclean.leader.election.enable", "sometimes"),
])
def test_out_of_range_values_are_invalid_config_naming_the_key(broker, key, value):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    error = refusal(admin.create_topics([NewTopic("t", 1, 1, config={key: value})])["t"])
    assert error.code() == INVALID_CONFIG, error
    assert key in error.str(), error.str()


def test_validate_only_checks_everything_and_creates_nothing(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics(
        [NewTopic("dry", 3, 1, config={"retention.ms": "1000"})], validate_only=True
    )["dry"].result(10)
    admin.create_topics(
        [NewTopic("dry-placed", 1, replica_assignment=[[0]])], validate_only=True
    )["dry-placed"].result(10)
    error = refusal(admin.create_topics(
        [NewTopic("dry-bad", 1, 1, config={"segment.ms": "0"})], validate_only=True
    )["dry-bad"])
    assert error.code() == INVALID_CONFIG
    error = refusal(admin.create_topics(
        [NewTopic("dry-bad", 1, replica_assignment=[[7]])], validate_only=True
    )["dry-bad"])
    assert error.code() == INVALID_REPLICA_ASSIGNMENT
    topics = admin.list_topics(timeout=10).topics
    assert not {"dry", "dry-placed", "dry-bad"} & set(topics)

    # CreatePartitions too: a valid growth is answered but not made.
    admin.create_topics([NewTopic("grow", 1, 1)])["grow"].result(10)
    admin.create_partitions([NewPartitions("grow", 4)], validate_only=True)["grow"].result(10)
    assert len(admin.list_topics(timeout=10).topics["grow"].partitions) == 1
    error = refusal(
        admin.create_partitions([NewPartitions("grow", 1)], validate_only=True)["grow"]
    )
    assert error.code() == 37  # INVALID_PARTITIONS


def test_kafka_python_validate_only_creates_nothing(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        response = admin.create_topics(
            {"dry-kp": {"num_partitions": 2, "configs": {"preallocate": "true"}}},
            validate_only=True,
        )
        assert response["topics"][0]["error_code"] == 0
        assert "dry-kp" not in admin.list_topics()
        with pytest.raises(kafka_errors.InvalidConfigurationError):
            admin.create_topics(
                {"dry-kp": {"configs": {"preallocate": "maybe"}}}, validate_only=True
            )
    finally:
        admin.close()


def test_create_partitions_with_assignments_places_them_or_refuses_as_kafka(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("more", 1, 1)])["more"].result(10)
    error = refusal(admin.create_partitions(
        [NewPartitions("more", 3, replica_assignment=[[0]])])["more"])
    assert error.code() == INVALID_REPLICA_ASSIGNMENT
    assert error.str() == ("Attempted to add 2 additional partition(s), but only 1 "
                           "assignment(s) were specified.")
    error = refusal(admin.create_partitions(
        [NewPartitions("more", 2, replica_assignment=[[3]])])["more"])
    assert error.code() == INVALID_REPLICA_ASSIGNMENT and "broker 3" in error.str()
    admin.create_partitions(
        [NewPartitions("more", 3, replica_assignment=[[0], [0]])])["more"].result(10)
    partitions = admin.list_topics(timeout=10).topics["more"].partitions
    assert sorted(partitions) == [0, 1, 2]
    assert all(p.replicas == [0] for p in partitions.values())
    round_trip(broker.bootstrap, "more", 3)
