"""A topic set to an older message format still serves every client: as in
Kafka 3.x, message.format.version is accepted and stored but the log keeps
v2 batches, and fetches older than v4 are down-converted."""
import subprocess

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import (
    AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic,
)
from kafka import KafkaConsumer, KafkaProducer, TopicPartition


def kcat(broker, *args, data=None):
    return subprocess.run(["kcat", "-b", broker.bootstrap, *args], input=data,
                          capture_output=True, check=True, timeout=30).stdout


def produce_from_every_client(broker, topic):
    """Records from confluent-kafka (plain and gzip v2 batches; kafka-python here has no lz4), kafka-python
    (v2, and magic 1 message sets for api_version 0.10.1) and kcat."""
    sent = []
    for codec in ["none", "gzip"]:
        producer = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": codec,
                             "linger.ms": 5})
        for i in range(5):
            key, value = f"ck-{codec}-{i}".encode(), f"confluent {codec} {i}".encode()
            producer.produce(topic, key=key, value=value)
            sent.append((key, value))
        assert producer.flush(10) == 0
    for api_version in [None, (0, 10, 1)]:
        options = {"api_version": api_version} if api_version else {}
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, **options)
        label = "auto" if api_version is None else "0.10.1"
        for i in range(5):
            key, value = f"kp-{label}-{i}".encode(), f"kafka-python {label} {i}".encode()
            producer.send(topic, key=key, value=value).get(10)
            sent.append((key, value))
        producer.close()
    lines = [f"kcat-{i}:kcat {i}" for i in range(5)]
    kcat(broker, "-P", "-t", topic, "-K", ":", data="\n".join(lines).encode() + b"\n")
    sent += [(line.split(":")[0].encode(), line.split(":")[1].encode()) for line in lines]
    return sent


def read_kafka_python(broker, topic, count, api_version):
    options = {"api_version": api_version} if api_version else {}
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=5000, enable_auto_commit=False, **options)
    consumer.assign([TopicPartition(topic, 0)])
    got = []
    for message in consumer:
        got.append((message.key, message.value))
        if len(got) == count:
            break
    consumer.close()
    return got


def read_confluent(broker, topic, count):
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": f"c-{topic}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    got = []
    try:
        for _ in range(200):
            message = consumer.poll(0.1)
            if message is not None and message.error() is None:
                got.append((message.key(), message.value()))
            if len(got) == count:
                break
    finally:
        consumer.close()
    return got


def read_kcat(broker, topic):
    out = kcat(broker, "-C", "-t", topic, "-e", "-o", "beginning", "-f", "%k\t%s\n")
    return [tuple(part.encode() for part in line.split("\t")) for line in out.decode().splitlines()]


def test_an_older_message_format_still_serves_every_client(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([
        NewTopic("format-0-10", 1, 1, config={"message.format.version": "0.10.0"}),
        NewTopic("format-altered", 1, 1),
    ])["format-0-10"].result(10)
    altered = ConfigResource(
        ConfigResource.Type.TOPIC, "format-altered",
        incremental_configs=[ConfigEntry("message.format.version", "0.9.0",
                                         incremental_operation=AlterConfigOpType.SET)],
    )
    list(admin.incremental_alter_configs([altered]).values())[0].result(10)

    for topic, version in [("format-0-10", "0.10.0"), ("format-altered", "0.9.0")]:
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        described = admin.describe_configs([resource])[resource].result(10)
        assert described["message.format.version"].value == version

        sent = produce_from_every_client(broker, topic)
        # Fetch v0/v1 (magic 0), v2/v3 (magic 1) and the newest (v2 batches).
        for api_version in [(0, 9), (0, 10, 1), None]:
            got = read_kafka_python(broker, topic, len(sent), api_version)
            assert got == sent, (topic, api_version)
        assert read_confluent(broker, topic, len(sent)) == sent, topic
        assert read_kcat(broker, topic) == sent, topic
