"""ACL authorization with `authorizer.class.name` set, through real clients.

Every connection is `User:ANONYMOUS` until SASL/TLS land, so each test
starts its broker with ANONYMOUS as a super user, grants ANONYMOUS what the
test needs, and restarts the broker without super users: the grants must
come back from the metadata log, and then hold on their own.
"""
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding, AclBindingFilter, AclOperation, AclPermissionType, AdminClient,
    ConfigResource, NewPartitions, NewTopic, ResourcePatternType, ResourceType,
)
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import (
    GroupAuthorizationFailedError, TopicAuthorizationFailedError,
)

import socket
import struct

from conftest import BIN, read_response, request

ME = "User:ANONYMOUS"
AUTHORIZER = "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"
TOPIC, GROUP, CLUSTER = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.BROKER
LITERAL, PREFIXED = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
ALLOW, DENY = AclPermissionType.ALLOW, AclPermissionType.DENY


def acl(rtype, name, op, permission=ALLOW, pattern=LITERAL, principal=ME):
    return AclBinding(rtype, name, pattern, principal, "*", op, permission)


def admin_of(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def wait_all(futures):
    for future in futures.values():
        future.result(10)


def secured_broker(make_broker, acls=(), topics=(), extra=()):
    """A broker whose ANONYMOUS user holds exactly `acls` (and topics
    `topics` exist), restarted without super users."""
    broker = make_broker(extra=["--override", AUTHORIZER, "--override", f"super.users={ME}", *extra])
    admin = admin_of(broker)
    if topics:
        wait_all(admin.create_topics([NewTopic(t, 1, 1) for t in topics]))
    if acls:
        wait_all(admin.create_acls(list(acls)))
    seed = Producer({"bootstrap.servers": broker.bootstrap})
    for t in topics:
        seed.produce(t, b"seed")
    assert seed.flush(10) == 0
    broker.extra = ["--override", AUTHORIZER, *extra]
    broker.restart()
    return broker


def error_code(exc):
    err = exc.args[0]
    return err.code() if isinstance(err, KafkaError) else err


def test_acl_apis_answer_security_disabled_without_an_authorizer(broker):
    admin = admin_of(broker)
    futures = admin.create_acls([acl(TOPIC, "t", AclOperation.READ)])
    with pytest.raises(KafkaException) as e:
        wait_all(futures)
    assert error_code(e.value) == KafkaError.SECURITY_DISABLED


def test_acls_round_trip_and_survive_a_restart(make_broker):
    grants = [
        acl(TOPIC, "orders", AclOperation.READ),
        acl(TOPIC, "app-", AclOperation.WRITE, pattern=PREFIXED),
        acl(GROUP, "g", AclOperation.ALL, permission=DENY, principal="User:bob"),
        acl(CLUSTER, "kafka-cluster", AclOperation.DESCRIBE),
    ]
    broker = secured_broker(make_broker, grants)
    admin = admin_of(broker)
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    listed = admin.describe_acls(everything).result(10)
    assert sorted(map(str, listed)) == sorted(map(str, grants))
    match = AclBindingFilter(TOPIC, "app-orders", ResourcePatternType.MATCH, None, None,
                             AclOperation.ANY, AclPermissionType.ANY)
    assert [str(b) for b in admin.describe_acls(match).result(10)] == [str(grants[1])]
    # Describe on the cluster, but not Alter: creating and deleting are refused.
    with pytest.raises(KafkaException) as e:
        wait_all(admin.create_acls([acl(TOPIC, "x", AclOperation.READ)]))
    assert error_code(e.value) == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    with pytest.raises(KafkaException) as e:
        wait_all(admin.delete_acls([everything]))
    assert error_code(e.value) == KafkaError.CLUSTER_AUTHORIZATION_FAILED


def test_delete_acls_removes_what_the_filter_matches(make_broker):
    broker = make_broker(extra=["--override", AUTHORIZER, "--override", f"super.users={ME}"])
    admin = admin_of(broker)
    wait_all(admin.create_acls([
        acl(TOPIC, "a", AclOperation.READ), acl(TOPIC, "b", AclOperation.READ),
        acl(GROUP, "a", AclOperation.READ),
    ]))
    only_topics = AclBindingFilter(TOPIC, None, ResourcePatternType.ANY, None, None,
                                   AclOperation.ANY, AclPermissionType.ANY)
    deleted = admin.delete_acls([only_topics])[only_topics].result(10)
    assert sorted(b.name for b in deleted) == ["a", "b"]
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    left = admin.describe_acls(everything).result(10)
    assert [(b.restype, b.name) for b in left] == [(GROUP, "a")]


def test_produce_and_fetch_need_write_and_read(make_broker):
    broker = secured_broker(
        make_broker,
        [acl(TOPIC, "open", AclOperation.WRITE), acl(TOPIC, "open", AclOperation.READ),
         acl(TOPIC, "readonly", AclOperation.READ)],
        topics=["open", "readonly", "closed"],
    )
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=0)
    producer.send("open", b"hello").get(10)
    with pytest.raises(TopicAuthorizationFailedError):
        producer.send("readonly", b"no").get(10)
    producer.close()

    consumer = KafkaConsumer("open", bootstrap_servers=broker.bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    assert [m.value for m in consumer] == [b"seed", b"hello"]
    consumer.close()

    # kcat: the read-only topic reads, the closed one is refused.
    out = subprocess.run(["kcat", "-C", "-b", broker.bootstrap, "-t", "readonly", "-e", "-q"],
                         capture_output=True, text=True, timeout=20)
    assert out.stdout.split() == ["seed"]
    out = subprocess.run(["kcat", "-C", "-b", broker.bootstrap, "-t", "closed", "-e"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode != 0 and "authoriz" in (out.stdout + out.stderr).lower()
    out = subprocess.run(["kcat", "-P", "-b", broker.bootstrap, "-t", "readonly"],
                         input="x\n", capture_output=True, text=True, timeout=20)
    assert "authoriz" in (out.stdout + out.stderr).lower()


def test_metadata_lists_only_describable_topics(make_broker):
    broker = secured_broker(
        make_broker, [acl(TOPIC, "vis", AclOperation.DESCRIBE, pattern=PREFIXED)],
        topics=["visible", "hidden"],
    )
    topics = admin_of(broker).list_topics(timeout=10).topics
    assert "visible" in topics and "hidden" not in topics
    hidden = admin_of(broker).list_topics(topic="hidden", timeout=10).topics["hidden"]
    assert hidden.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # No Create anywhere: asking for an unknown topic does not create it.
    unknown = admin_of(broker).list_topics(topic="visible-new", timeout=10).topics["visible-new"]
    assert unknown.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_deny_beats_allow_and_prefixed_patterns_apply(make_broker):
    broker = secured_broker(make_broker, [
        acl(TOPIC, "*", AclOperation.ALL),
        acl(TOPIC, "secret-", AclOperation.WRITE, permission=DENY, pattern=PREFIXED),
    ], topics=["public", "secret-plans"])
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=0)
    producer.send("public", b"ok").get(10)
    with pytest.raises(TopicAuthorizationFailedError):
        producer.send("secret-plans", b"no").get(10)
    producer.close()


def test_groups_and_commits_need_group_and_topic_rights(make_broker):
    broker = secured_broker(make_broker, [
        acl(TOPIC, "events", AclOperation.READ),
        acl(GROUP, "allowed", AclOperation.READ),
    ], topics=["events"])
    consumer = KafkaConsumer("events", bootstrap_servers=broker.bootstrap, group_id="allowed",
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    assert [m.value for m in consumer] == [b"seed"]
    consumer.commit()
    consumer.close()

    refused = KafkaConsumer("events", bootstrap_servers=broker.bootstrap, group_id="other",
                            auto_offset_reset="earliest", consumer_timeout_ms=3000)
    with pytest.raises(GroupAuthorizationFailedError):
        list(refused)
    refused.close()

    # Without Describe on the group (Read implies it) or Delete: refused.
    confluent_admin = admin_of(broker)
    listed = confluent_admin.list_consumer_groups().result(10).valid
    assert [g.group_id for g in listed] == ["allowed"]
    result = confluent_admin.delete_consumer_groups(["allowed"])["allowed"]
    with pytest.raises(KafkaException) as e:
        result.result(10)
    assert error_code(e.value) == KafkaError.GROUP_AUTHORIZATION_FAILED


def test_topic_admin_needs_create_delete_and_alter(make_broker):
    broker = secured_broker(make_broker, [
        acl(TOPIC, "mine-", AclOperation.CREATE, pattern=PREFIXED),
        acl(TOPIC, "mine-", AclOperation.ALTER, pattern=PREFIXED),
        acl(TOPIC, "mine-", AclOperation.DELETE, pattern=PREFIXED),
    ], topics=["theirs"])
    admin = admin_of(broker)
    created = admin.create_topics([NewTopic("mine-1", 1, 1), NewTopic("other", 1, 1)])
    created["mine-1"].result(10)
    with pytest.raises(KafkaException) as e:
        created["other"].result(10)
    assert error_code(e.value) == KafkaError.TOPIC_AUTHORIZATION_FAILED

    admin.create_partitions([NewPartitions("mine-1", 2)])["mine-1"].result(10)
    with pytest.raises(KafkaException) as e:
        admin.create_partitions([NewPartitions("theirs", 2)])["theirs"].result(10)
    assert error_code(e.value) == KafkaError.TOPIC_AUTHORIZATION_FAILED

    with pytest.raises(KafkaException) as e:
        admin.delete_topics(["theirs"])["theirs"].result(10)
    assert error_code(e.value) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    admin.delete_topics(["mine-1"])["mine-1"].result(10)


def test_configs_need_describe_and_alter_configs(make_broker):
    broker = secured_broker(make_broker, [
        acl(TOPIC, "tuned", AclOperation.ALTER_CONFIGS),
    ], topics=["tuned", "fixed"])
    admin = admin_of(broker)
    tuned = ConfigResource(ConfigResource.Type.TOPIC, "tuned")
    fixed = ConfigResource(ConfigResource.Type.TOPIC, "fixed")
    # AlterConfigs implies DescribeConfigs.
    assert "retention.ms" in admin.describe_configs([tuned])[tuned].result(10)
    with pytest.raises(KafkaException) as e:
        admin.describe_configs([fixed])[fixed].result(10)
    assert error_code(e.value) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    tuned.set_config("retention.ms", "60000")
    admin.alter_configs([tuned])[tuned].result(10)
    fixed.set_config("retention.ms", "1")
    with pytest.raises(KafkaException) as e:
        admin.alter_configs([fixed])[fixed].result(10)
    assert error_code(e.value) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    broker_resource = ConfigResource(ConfigResource.Type.BROKER, "0")
    with pytest.raises(KafkaException) as e:
        admin.describe_configs([broker_resource])[broker_resource].result(10)
    assert error_code(e.value) == KafkaError.CLUSTER_AUTHORIZATION_FAILED


def test_idempotent_producers_need_write_on_some_topic(make_broker):
    broker = secured_broker(make_broker, [acl(TOPIC, "readable", AclOperation.READ)],
                            topics=["readable"])
    errors = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True,
                         "error_cb": errors.append})
    producer.produce("readable", b"x")
    try:
        producer.flush(5)
    except KafkaException as e:
        errors.append(e.args[0])
    assert any(e.code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED for e in errors), errors

    broker2 = secured_broker(make_broker, [acl(TOPIC, "writable", AclOperation.WRITE)],
                             topics=["writable"])
    delivered = []
    producer = Producer({"bootstrap.servers": broker2.bootstrap, "enable.idempotence": True})
    producer.produce("writable", b"x", on_delivery=lambda err, msg: delivered.append(err))
    assert producer.flush(10) == 0
    assert delivered == [None]


def test_super_users_and_allow_everyone_if_no_acl_found(make_broker):
    broker = make_broker(extra=["--override", AUTHORIZER,
                                "--override", "allow.everyone.if.no.acl.found=true"])
    admin = admin_of(broker)
    # No ACL anywhere: everyone may do everything, ACL admin included.
    wait_all(admin.create_topics([NewTopic("free", 1, 1), NewTopic("guarded", 1, 1)]))
    wait_all(admin.create_acls([acl(TOPIC, "guarded", AclOperation.READ, principal="User:bob")]))
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=0)
    producer.send("free", b"ok").get(10)
    # An ACL on the topic (for someone else) closes it to ANONYMOUS.
    with pytest.raises(TopicAuthorizationFailedError):
        producer.send("guarded", b"no").get(10)
    producer.close()


def test_an_unknown_authorizer_class_is_refused_at_start(tmp_path):
    out = subprocess.run(
        [str(BIN), "broker", "--data-dir", str(tmp_path),
         "--override", "authorizer.class.name=com.example.Custom"],
        capture_output=True, text=True, timeout=20,
    )
    assert out.returncode == 2
    assert "authorizer.class.name" in out.stderr


def kafka_acls(broker, *args, stdin=None):
    out = subprocess.run([str(BIN), "acls", "--bootstrap-server", broker.bootstrap, *args],
                         input=stdin, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_kafka_acls_sh_adds_lists_and_removes(make_broker, tmp_path):
    broker = make_broker(extra=["--override", AUTHORIZER, "--override", f"super.users={ME}"])
    client_config = tmp_path / "client.properties"
    client_config.write_text("security.protocol=PLAINTEXT\n")
    added = kafka_acls(broker, "--command-config", str(client_config), "--add",
                       "--allow-principal", "User:alice", "--operation", "Read",
                       "--operation", "Describe", "--topic", "orders")
    assert "Adding ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`:" in added
    assert "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)" in added
    assert "Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`:" in added
    kafka_acls(broker, "--add", "--allow-principal", "User:bob", "--consumer",
               "--topic", "app-", "--group", "app-", "--resource-pattern-type", "prefixed")
    kafka_acls(broker, "--add", "--deny-principal", "User:eve", "--deny-host", "10.0.0.9",
               "--producer", "--topic", "orders")

    listed = kafka_acls(broker, "--list")
    assert "name=app-, patternType=PREFIXED" in listed
    assert "(principal=User:bob, host=*, operation=READ, permissionType=ALLOW)" in listed
    assert "(principal=User:eve, host=10.0.0.9, operation=WRITE, permissionType=DENY)" in listed
    # The same bindings through a client's own ACL API.
    admin = admin_of(broker)
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    assert len(admin.describe_acls(everything).result(10)) == 2 + 3 + 3

    only_orders = kafka_acls(broker, "--list", "--topic", "orders")
    assert "User:bob" not in only_orders and "User:alice" in only_orders

    # Without --force the tool asks; "n" keeps the ACLs.
    kafka_acls(broker, "--remove", "--topic", "orders", stdin="n\n")
    assert "User:alice" in kafka_acls(broker, "--list", "--topic", "orders")
    kafka_acls(broker, "--remove", "--force", "--allow-principal", "User:alice",
               "--operation", "Read", "--topic", "orders")
    left = kafka_acls(broker, "--list", "--topic", "orders")
    assert "operation=READ" not in left and "operation=DESCRIBE" in left
    kafka_acls(broker, "--remove", "--topic", "orders", stdin="y\n")
    assert "orders" not in kafka_acls(broker, "--list")


def test_aiokafka_is_refused_a_topic_and_served_another(make_broker):
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.errors import TopicAuthorizationFailedError as AioTopicAuthorizationFailed

    broker = secured_broker(make_broker, [
        acl(TOPIC, "ok", AclOperation.WRITE), acl(TOPIC, "ok", AclOperation.READ),
        acl(TOPIC, "ro", AclOperation.READ),
    ], topics=["ok", "ro"])

    async def scenario():
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait("ok", b"fine")
            with pytest.raises(AioTopicAuthorizationFailed):
                await producer.send_and_wait("ro", b"refused")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer("ok", bootstrap_servers=broker.bootstrap,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            got = []
            for _ in range(10):
                batches = await consumer.getmany(timeout_ms=1000)
                got += [m.value for ms in batches.values() for m in ms]
                if len(got) >= 2:
                    break
            return got
        finally:
            await consumer.stop()

    assert asyncio.run(scenario()) == [b"seed", b"fine"]


def list_offsets_v1_error(broker, topic):
    """The error code of partition 0 in a raw ListOffsets v1 answer."""
    name = topic.encode()
    body = (struct.pack(">ii", -1, 1) + struct.pack(">h", len(name)) + name
            + struct.pack(">iiq", 1, 0, -1))
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        s.sendall(request(2, 1, 7, body))
        response = read_response(s)
    # correlation id, topic count, topic name, partition count, partition, error
    (name_len,) = struct.unpack_from(">h", response, 8)
    (error,) = struct.unpack_from(">h", response, 10 + name_len + 8)
    return error


def test_offsets_and_delete_records_need_describe_and_delete(make_broker):
    from confluent_kafka import TopicPartition

    broker = secured_broker(make_broker, [
        acl(TOPIC, "seen", AclOperation.DESCRIBE),
        acl(TOPIC, "trimmed", AclOperation.DELETE),
        acl(GROUP, "g", AclOperation.READ),
    ], topics=["seen", "unseen", "trimmed"])
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "g"})
    # ListOffsets needs Describe on the topic.
    assert consumer.get_watermark_offsets(TopicPartition("seen", 0), timeout=10) == (0, 1)
    # librdkafka stops at Metadata for a topic it cannot describe; ask the
    # broker itself with a ListOffsets v1 frame.
    assert list_offsets_v1_error(broker, "unseen") == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert list_offsets_v1_error(broker, "seen") == 0
    # OffsetFetch: Describe on the group (Read implies it) and on each topic.
    seen, unseen = consumer.committed(
        [TopicPartition("seen", 0), TopicPartition("unseen", 0)], timeout=10)
    assert seen.error is None and seen.offset < 0
    assert unseen.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    consumer.close()

    admin = admin_of(broker)
    trimmed = TopicPartition("trimmed", 0, 1)
    assert admin.delete_records([trimmed])[trimmed].result(10).low_watermark == 1
    refused = TopicPartition("seen", 0, 1)
    with pytest.raises(KafkaException) as e:
        admin.delete_records([refused])[refused].result(10)
    assert error_code(e.value) == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_authorized_operations_are_reported(make_broker):
    from confluent_kafka import TopicCollection

    broker = secured_broker(make_broker, [
        acl(TOPIC, "events", AclOperation.READ),
        acl(TOPIC, "events", AclOperation.ALTER_CONFIGS),
        acl(GROUP, "g", AclOperation.DELETE),
        acl(CLUSTER, "kafka-cluster", AclOperation.DESCRIBE),
    ], topics=["events"])
    admin = admin_of(broker)
    topic = admin.describe_topics(TopicCollection(["events"]),
                                  include_authorized_operations=True)["events"].result(10)
    assert set(topic.authorized_operations) == {
        AclOperation.READ, AclOperation.DESCRIBE, AclOperation.ALTER_CONFIGS,
        AclOperation.DESCRIBE_CONFIGS}
    cluster = admin.describe_cluster(include_authorized_operations=True).result(10)
    assert set(cluster.authorized_operations) == {AclOperation.DESCRIBE}
    group = admin.describe_consumer_groups(["g"], include_authorized_operations=True)["g"]
    assert set(group.result(10).authorized_operations) == {
        AclOperation.DELETE, AclOperation.DESCRIBE}


def test_acls_through_a_separate_coordinator(tmp_path):
    from test_coordinator import Coordinator
    from conftest import Broker

    coordinator = Coordinator(tmp_path / "coordinator").start()
    zk = ["--override", f"zookeeper.connect={coordinator.address}", "--override", AUTHORIZER]
    broker = Broker(tmp_path / "broker", extra=[*zk, "--override", f"super.users={ME}"])
    try:
        broker.start()
        admin = admin_of(broker)
        wait_all(admin.create_topics([NewTopic("remote", 1, 1), NewTopic("closed", 1, 1)]))
        wait_all(admin.create_acls([acl(TOPIC, "remote", AclOperation.WRITE)]))
        broker.extra = zk
        broker.restart()
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, retries=0)
        producer.send("remote", b"ok").get(10)
        with pytest.raises(TopicAuthorizationFailedError):
            producer.send("closed", b"no").get(10)
        producer.close()
    finally:
        broker.stop()
        coordinator.stop()
