"""The coordinator's HTTP API does not trust its callers: topic configs go
through the broker's validator, producer-id blocks are Kafka's size, and
partitions are capped per topic and per broker. Raw HTTP, as `curl` would."""
import json
import urllib.error
import urllib.request

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from test_coordinator import processes, wait_until  # noqa: F401  (the fixture)

INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_CONFIG = 40
INVALID_REQUEST = 42
POLICY_VIOLATION = 44


def post(coordinator, path, body):
    request = urllib.request.Request(
        f"http://{coordinator.address}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def create_topic(coordinator, name, partitions=1, replication_factor=1, configs=None,
                 validate_only=False):
    return post(coordinator, "/v1/topics", {
        "name": name, "num_partitions": partitions, "replication_factor": replication_factor,
        "configs": configs or {}, "validate_only": validate_only,
    })


def describe(admin, resource):
    """The topic's configs, or None until the broker's image has the topic."""
    try:
        return admin.describe_configs([resource])[resource].result(10)
    except Exception:
        return None


def test_topic_configs_over_http_meet_the_brokers_validator(processes):  # noqa: F811
    coordinator = processes.coordinator()
    broker = processes.broker(coordinator)
    status, answer = create_topic(
        coordinator, "extra", configs={"retention.ms": "-1", "remote.storage.enable": "true"})
    assert (status, answer["error_code"]) == (400, INVALID_CONFIG), answer
    assert "remote.storage.enable" in answer["error_message"]
    status, answer = post(coordinator, "/v1/topics", {
        "name": "placed", "num_partitions": 1, "replication_factor": 1,
        "assignments": [{"partition_index": 0, "broker_ids": [9]}],
    })
    assert (status, answer["error_code"]) == (400, 39), answer  # INVALID_REPLICA_ASSIGNMENT
    status, answer = create_topic(
        coordinator, "compacted", configs={"cleanup.policy": "shred"})
    assert answer["error_code"] == INVALID_CONFIG and "cleanup.policy" in answer["error_message"]

    status, answer = create_topic(
        coordinator, "forever", configs={"retention.ms": "-1", "segment.ms": "3600000"})
    assert status == 200, answer
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, "forever")
    configs = wait_until(lambda: describe(admin, resource))
    assert configs["retention.ms"].value == "-1"
    assert configs["segment.ms"].value == "3600000"
    assert "invalid topic config ignored" not in broker.output()


def test_producer_id_count_abuse_is_refused_and_init_producer_id_keeps_working(processes):  # noqa: F811,E501
    coordinator = processes.coordinator()
    broker = processes.broker(coordinator)
    for count in [9_200_000_000_000_000_000, -5, 0, 1001]:
        status, answer = post(coordinator, "/v1/producer-ids", {"broker_id": 0, "count": count})
        assert (status, answer["error_code"]) == (400, INVALID_REQUEST), (count, answer)
    status, answer = post(coordinator, "/v1/producer-ids", {"broker_id": 0})
    assert status == 200 and answer["producer_id_len"] == 1000, answer

    status, _ = create_topic(coordinator, "idem")
    assert status == 200
    broker.restart()  # a fresh broker must allocate a fresh block
    producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True})
    delivered = []
    producer.produce("idem", b"v", on_delivery=lambda err, msg: delivered.append(err))
    producer.flush(15)
    assert delivered == [None]


def test_partitions_are_capped_per_topic_and_per_broker(processes):  # noqa: F811
    coordinator = processes.coordinator()
    processes.broker(coordinator)
    status, _ = create_topic(coordinator, "wide")
    assert status == 200
    # One call adding 10 000 passed the old per-call cap; the topic would
    # have 10 001 partitions, all on the one broker.
    status, answer = post(coordinator, "/v1/topics/wide/partitions",
                          {"count": 10_001, "validate_only": True})
    assert (status, answer["error_code"]) == (400, POLICY_VIOLATION), answer
    assert "gregor.max.partitions.per.topic=10000" in answer["error_message"]
    status, answer = create_topic(coordinator, "wider", partitions=4000, validate_only=True)
    assert answer["error_code"] == POLICY_VIOLATION, answer
    assert "gregor.max.partitions.per.broker=4000" in answer["error_message"]
    status, answer = create_topic(coordinator, "fits", partitions=3999, validate_only=True)
    assert status == 200, answer

    status, answer = create_topic(coordinator, "neg", partitions=-5)
    assert answer["error_code"] == INVALID_PARTITIONS, answer
    status, answer = create_topic(coordinator, "rf", replication_factor=32767)
    assert answer["error_code"] == INVALID_REPLICATION_FACTOR, answer
    status, answer = create_topic(coordinator, "rf0", replication_factor=0)
    assert answer["error_code"] == INVALID_REPLICATION_FACTOR, answer
    status, answer = post(coordinator, "/v1/topics/wide/partitions", {"count": -1})
    assert answer["error_code"] == INVALID_PARTITIONS, answer
