"""Topic configs: one validator for the broker and the coordinator, and the
per-topic limits a produce must meet, driven by real clients."""
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic,
)
from kafka import KafkaProducer
from kafka.errors import MessageSizeTooLargeError, NotEnoughReplicasError

INVALID_CONFIG = 40


def create(admin, name, config, partitions=1):
    return admin.create_topics([NewTopic(name, partitions, 1, config=config)])[name]


def refusal(future):
    try:
        future.result(10)
    except KafkaException as e:
        return e.args[0]
    raise AssertionError("the request was accepted")


def test_refused_topic_configs_are_invalid_config_naming_the_key(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    for key, value in [
        ("cleanup.policy", "shred"),
        ("preallocate", "yes"),
        ("remote.storage.enable", "true"),
        ("retention.ms", "soon"),
        ("retention.mss", "1"),
    ]:
        error = refusal(create(admin, "t-" + key.replace(".", "-"), {key: value}))
        assert error.code() == INVALID_CONFIG, (key, error)
        assert key in error.str(), error.str()
    create(admin, "compacted", {"cleanup.policy": "compact,delete"}).result(10)

    create(admin, "kept", {"retention.ms": "-1"}).result(10)
    resource = ConfigResource(ConfigResource.Type.TOPIC, "kept")
    change = ConfigResource(
        ConfigResource.Type.TOPIC, "kept",
        incremental_configs=[
            ConfigEntry("preallocate", "yes", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    altered = admin.incremental_alter_configs([change])
    error = refusal(altered[list(altered)[0]])
    assert error.code() == INVALID_CONFIG and "preallocate" in error.str()
    configs = admin.describe_configs([resource])[resource].result(10)
    assert configs["retention.ms"].value == "-1"


def test_produce_over_the_topics_max_message_bytes_is_message_too_large(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    create(admin, "small", {"max.message.bytes": "1000"}).result(10)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=0)
    try:
        producer.send("small", b"x" * 100).get(10)
        try:
            producer.send("small", b"x" * 2000).get(10)
            raise AssertionError("a record over max.message.bytes was stored")
        except MessageSizeTooLargeError:
            pass
    finally:
        producer.close()


def test_min_insync_replicas_above_the_replication_factor_refuses_acks_all_only(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    create(admin, "guarded", {"min.insync.replicas": "2"}).result(10)
    all_acks = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", retries=0)
    try:
        try:
            all_acks.send("guarded", b"v").get(10)
            raise AssertionError("acks=all was accepted with 1 in-sync replica of 2 required")
        except NotEnoughReplicasError:
            pass
    finally:
        all_acks.close()
    one_ack = KafkaProducer(bootstrap_servers=broker.bootstrap, acks=1, retries=0)
    try:
        assert one_ack.send("guarded", b"v").get(10).offset == 0
    finally:
        one_ack.close()
