"""The attacks on the Kafka port listed at the top of issue 11, replayed
against a secured deployment: a SASL_SSL listener, SCRAM users, ACLs on.
`mallory` authenticates (any outsider can get a login somewhere) but holds
no ACLs; each attack is refused with Kafka's code and changes nothing that
the owner (`admin`, a super user) can see. (The coordinator port's attacks
are in test_control_plane.py.)"""
import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                   ConfigResource, NewPartitions, NewTopic, ResourcePatternType,
                                   ResourceType)

from test_sasl import ck_config, start_sasl_broker

TOPIC, GROUP = "orders", "billing"
AUTHORIZER = ("authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n"
              "super.users=User:admin\n")


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    broker = start_sasl_broker(
        tmp_path_factory.mktemp("attacks"), AUTHORIZER, tls=True,
        env={"KAFKA_CLIENT_USERS": "admin,alice,mallory",
             "KAFKA_CLIENT_PASSWORDS": "admin-secret,alice-secret,mallory-secret"})
    admin = AdminClient(ck_config(broker, "SCRAM-SHA-512", "admin", "admin-secret"))
    admin.create_topics([NewTopic(TOPIC, 2, 1)])["orders"].result(30)
    producer = Producer(ck_config(broker, "SCRAM-SHA-512", "admin", "admin-secret"))
    for i in range(4):
        producer.produce(TOPIC, str(i).encode(), partition=i % 2)
    assert producer.flush(30) == 0
    # The billing application's committed position.
    owner = Consumer({**ck_config(broker, "SCRAM-SHA-512", "admin", "admin-secret"),
                      "group.id": GROUP, "enable.auto.commit": False})
    owner.commit(offsets=[TopicPartition(TOPIC, 0, 2), TopicPartition(TOPIC, 1, 2)],
                 asynchronous=False)
    owner.close()
    broker.admin = admin
    yield broker
    broker.kill9()


def mallory(broker):
    return ck_config(broker, "SCRAM-SHA-512", "mallory", "mallory-secret")


def refused_with(future, code_name):
    """`future` from an admin client the caller still holds (a collected
    client cancels its futures)."""
    with pytest.raises(KafkaException) as raised:
        future.result(30)
    assert raised.value.args[0].name() == code_name, raised.value
    return True


def test_delete_topics_is_refused(secured):
    client = AdminClient(mallory(secured))
    attack = client.delete_topics([TOPIC])[TOPIC]
    assert refused_with(attack, "TOPIC_AUTHORIZATION_FAILED")
    assert TOPIC in secured.admin.list_topics(timeout=30).topics


def test_create_topics_is_refused(secured):
    name = f"squat-{uuid.uuid4().hex[:6]}"
    client = AdminClient(mallory(secured))
    attack = client.create_topics([NewTopic(name, 1, 1)])[name]
    assert refused_with(attack, "TOPIC_AUTHORIZATION_FAILED")
    assert name not in secured.admin.list_topics(timeout=30).topics


def test_alter_configs_retention_is_refused(secured):
    resource = ConfigResource(ResourceType.TOPIC, TOPIC, set_config={"retention.ms": "1"})
    client = AdminClient(mallory(secured))
    attack = client.alter_configs([resource])
    assert refused_with(next(iter(attack.values())), "TOPIC_AUTHORIZATION_FAILED")
    described = secured.admin.describe_configs([ConfigResource(ResourceType.TOPIC, TOPIC)])
    configs = next(iter(described.values())).result(30)
    assert configs["retention.ms"].value != "1"


def test_create_partitions_is_refused(secured):
    client = AdminClient(mallory(secured))
    attack = client.create_partitions([NewPartitions(TOPIC, 8)])[TOPIC]
    assert refused_with(attack, "TOPIC_AUTHORIZATION_FAILED")
    assert len(secured.admin.list_topics(timeout=30).topics[TOPIC].partitions) == 2


def test_offset_commit_into_another_group_is_refused(secured):
    # Let mallory find the group's coordinator (Describe), so that the
    # refusal seen is OffsetCommit's own, not FindCoordinator's.
    describe = AclBinding(ResourceType.GROUP, GROUP, ResourcePatternType.LITERAL, "User:mallory",
                          "*", AclOperation.DESCRIBE, AclPermissionType.ALLOW)
    for future in secured.admin.create_acls([describe]).values():
        future.result(30)
    intruder = Consumer({**mallory(secured), "group.id": GROUP, "enable.auto.commit": False})
    with pytest.raises(KafkaException) as raised:
        intruder.commit(offsets=[TopicPartition(TOPIC, 0, 0)], asynchronous=False)
    intruder.close()
    assert raised.value.args[0].name() == "GROUP_AUTHORIZATION_FAILED", raised.value
    owner = Consumer({**ck_config(secured, "SCRAM-SHA-512", "admin", "admin-secret"),
                      "group.id": GROUP})
    committed = owner.committed([TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)], timeout=30)
    owner.close()
    assert [c.offset for c in committed] == [2, 2]


def test_delete_groups_is_refused(secured):
    client = AdminClient(mallory(secured))
    attack = client.delete_consumer_groups([GROUP], request_timeout=30)
    assert refused_with(attack[GROUP], "GROUP_AUTHORIZATION_FAILED")
    groups = secured.admin.list_consumer_groups().result(30).valid
    assert GROUP in [g.group_id for g in groups]


def test_init_producer_id_cannot_fence_another_applications_producer(secured):
    """Fencing works through a transactional id: mallory claiming billing's
    is refused before any producer id is handed out (gregor has no
    transactions yet, so the owner cannot hold one; the refusal is what
    protects it once it does)."""
    intruder = Producer({**mallory(secured), "transactional.id": "billing-tx"})
    with pytest.raises(KafkaException) as raised:
        intruder.init_transactions(30)
    assert raised.value.args[0].name() == "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", raised.value


def test_init_producer_id_for_an_idempotent_producer_is_refused_without_write(secured):
    errors = []
    intruder = Producer({**mallory(secured), "enable.idempotence": True,
                         "error_cb": errors.append})
    intruder.produce(TOPIC, b"forged")
    deadline = time.time() + 15
    while not errors and time.time() < deadline:
        try:
            intruder.poll(0.5)
        except KafkaException as fatal:  # librdkafka raises the fatal error
            errors.append(fatal.args[0])
    # Kafka answers InitProducerId without IdempotentWrite (or Write on
    # some topic, KIP-679) with CLUSTER_AUTHORIZATION_FAILED.
    assert any(e.name() == "CLUSTER_AUTHORIZATION_FAILED" for e in errors), errors
