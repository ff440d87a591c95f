"""DescribeConfigs as Kafka answers it: every broker key with its value,
source, synonyms, type and documentation, and topic configs inheriting
from the broker's keys with the broker key named as the synonym."""
import socket
import struct

from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from kafka.admin import ConfigResource as KafkaPythonResource
from kafka.admin import ConfigResourceType, KafkaAdminClient

from conftest import read_response, request

DYNAMIC_TOPIC_CONFIG = 1
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5
INVALID_REQUEST = 42

BROKER_FLAGS = ["--override", "log.retention.minutes=30", "--override", "num.io.threads=16",
                "--override", "ssl.keystore.password=hunter2"]


def synonyms(entry):
    return [(s.name, s.value, s.source) for s in entry.synonyms.values()]


def test_confluent_describes_every_broker_key_with_sources_and_synonyms(make_broker):
    broker = make_broker(extra=BROKER_FLAGS, env={"KAFKA_LOG_SEGMENT_BYTES": "2097152"})
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    resource = ConfigResource(ConfigResource.Type.BROKER, "0")
    configs = admin.describe_configs([resource])[resource].result(10)
    assert len(configs) > 100, sorted(configs)

    minutes = configs["log.retention.minutes"]
    assert (minutes.value, minutes.source) == ("30", STATIC_BROKER_CONFIG)
    assert synonyms(minutes) == [
        ("log.retention.minutes", "30", STATIC_BROKER_CONFIG),
        ("log.retention.hours", "168", DEFAULT_CONFIG),
    ]
    unset = configs["log.retention.ms"]
    assert (unset.value, unset.source, synonyms(unset)) == (None, DEFAULT_CONFIG, [])
    hours = configs["log.retention.hours"]
    assert (hours.value, hours.source) == ("168", DEFAULT_CONFIG)
    segment = configs["log.segment.bytes"]  # from the environment: still a static config
    assert (segment.value, segment.source) == ("2097152", STATIC_BROKER_CONFIG)
    assert configs["num.io.threads"].value == "16"
    assert configs["broker.id"].value == "0"
    assert all(entry.is_read_only for entry in configs.values())

    secret = configs["ssl.keystore.password"]
    assert secret.is_sensitive and secret.value is None


def test_topic_configs_name_the_broker_synonym_they_inherit_from(make_broker):
    broker = make_broker(extra=BROKER_FLAGS)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("t", 1, 1, config={"segment.ms": "60000"})])["t"].result(10)
    resource = ConfigResource(ConfigResource.Type.TOPIC, "t")
    configs = admin.describe_configs([resource])[resource].result(10)

    retention = configs["retention.ms"]
    assert (retention.value, retention.source) == ("1800000", STATIC_BROKER_CONFIG)
    assert synonyms(retention) == [
        ("log.retention.minutes", "30", STATIC_BROKER_CONFIG),
        ("log.retention.hours", "168", DEFAULT_CONFIG),
    ]
    segment = configs["segment.ms"]
    assert (segment.value, segment.source) == ("60000", DYNAMIC_TOPIC_CONFIG)
    assert synonyms(segment)[0] == ("segment.ms", "60000", DYNAMIC_TOPIC_CONFIG)
    assert ("log.roll.hours", "168", DEFAULT_CONFIG) in synonyms(segment)
    ratio = configs["min.cleanable.dirty.ratio"]
    assert (ratio.value, ratio.source) == ("0.5", DEFAULT_CONFIG)
    assert not any(entry.is_read_only for entry in configs.values())


def test_kafka_python_describes_the_broker_and_topics(make_broker):
    broker = make_broker(extra=BROKER_FLAGS)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        result = admin.describe_configs(
            [KafkaPythonResource(ConfigResourceType.BROKER, "0")],
            include_synonyms=True, config_filter="all",
        )
        configs = result["broker"]["0"]
        minutes = configs["log.retention.minutes"]
        assert (minutes["value"], minutes["config_source"]) == ("30", "STATIC_BROKER_CONFIG")
        assert [s["name"] for s in minutes["synonyms"]] == [
            "log.retention.minutes", "log.retention.hours"]
        assert configs["log.retention.hours"]["config_type"] == "INT"
        assert configs["log.cleanup.policy"]["config_type"] == "LIST"

        admin.create_topics({"kp": {"configs": {"retention.ms": "1000"}}})
        result = admin.describe_configs(
            [KafkaPythonResource(ConfigResourceType.TOPIC, "kp")], include_synonyms=True,
            config_filter="all")
        topic = result["topic"]["kp"]
        assert topic["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        assert topic["retention.bytes"]["config_source"] == "DEFAULT_CONFIG"
        assert topic["min.cleanable.dirty.ratio"]["config_type"] == "DOUBLE"
    finally:
        admin.close()


def string(text):
    data = text.encode()
    return struct.pack(">h", len(data)) + data


class Reader:
    def __init__(self, data):
        self.data, self.at = data, 0

    def take(self, fmt):
        (value,) = struct.unpack_from(fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return value

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        text = self.data[self.at:self.at + n].decode()
        self.at += n
        return text


def describe_v3(bootstrap, resource_type, name, keys):
    """DescribeConfigs v3 with synonyms and documentation, by hand: the
    error code and {key: (value, source, config_type, documentation)}."""
    body = struct.pack(">i", 1) + struct.pack(">b", resource_type) + string(name)
    body += struct.pack(">i", len(keys)) + b"".join(string(k) for k in keys)
    body += struct.pack(">??", True, True)
    host, port = bootstrap.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request(32, 3, 1, body))
        r = Reader(read_response(s))
    assert r.take(">i") == 1  # correlation id
    r.take(">i")  # throttle
    assert r.take(">i") == 1
    error_code = r.take(">h")
    r.string(), r.take(">b"), r.string()
    entries = {}
    for _ in range(r.take(">i")):
        key, value = r.string(), r.string()
        r.take(">?")  # read only
        source = r.take(">b")
        r.take(">?")  # sensitive
        for _ in range(r.take(">i")):
            r.string(), r.string(), r.take(">b")
        config_type, documentation = r.take(">b"), r.string()
        entries[key] = (value, source, config_type, documentation)
    return error_code, entries


def test_documentation_and_types_come_with_v3(broker):
    error, entries = describe_v3(
        broker.bootstrap, 4, "0", ["log.retention.hours", "num.io.threads"])
    assert error == 0
    value, source, config_type, documentation = entries["log.retention.hours"]
    assert (value, source, config_type) == ("168", DEFAULT_CONFIG, 3)  # INT
    assert "retention" in documentation
    assert "ignores" in entries["num.io.threads"][3]

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("doc", 1, 1)])["doc"].result(10)
    _, entries = describe_v3(broker.bootstrap, 2, "doc", ["cleanup.policy", "preallocate"])
    assert entries["cleanup.policy"][:3] == ("delete", DEFAULT_CONFIG, 7)  # LIST
    assert entries["preallocate"][:3] == ("false", DEFAULT_CONFIG, 1)  # BOOLEAN
    assert entries["preallocate"][3]


def test_another_brokers_id_is_refused_as_kafka_refuses_it(broker):
    assert describe_v3(broker.bootstrap, 4, "7", [])[0] == INVALID_REQUEST
    assert describe_v3(broker.bootstrap, 4, "zero", [])[0] == INVALID_REQUEST
    assert describe_v3(broker.bootstrap, 4, "", []) == (0, {})
