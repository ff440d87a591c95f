"""Fetch v13-v15: topics named by id (KIP-516), and from v15 the replica's
state with its broker epoch (KIP-903). librdkafka and kafka-python both
fetch at these versions once the broker offers them; a fetch naming a
topic id the broker does not know is answered UNKNOWN_TOPIC_ID, as Kafka
answers it."""
import logging
import re
import socket
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from kafka.protocol.consumer import FetchRequest, FetchResponse
from kafka.protocol.metadata import MetadataRequest, MetadataResponse

from conftest import read_response

UNKNOWN_TOPIC_ID = 100


def produce(bootstrap, topic, values):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for value in values:
        producer.produce(topic, value)
    assert producer.flush(15) == 0


def call(sock, request, response_class, version):
    """One request encoded by kafka-python's protocol classes at `version`."""
    request.with_header(correlation_id=7, client_id="topic-ids-test")
    sock.sendall(request.encode(version=version, header=True, framed=True))
    return response_class.decode(read_response(sock), version=version, header=True)


def fetch_by_id(sock, topic_id, version):
    partition = FetchRequest.FetchTopic.FetchPartition(
        partition=0, fetch_offset=0, partition_max_bytes=1 << 20)
    request = FetchRequest(
        max_wait_ms=100, min_bytes=1, max_bytes=1 << 20, isolation_level=0,
        session_id=0, session_epoch=-1, forgotten_topics_data=[], rack_id="",
        topics=[FetchRequest.FetchTopic(topic_id=topic_id, partitions=[partition])])
    response = call(sock, request, FetchResponse, version)
    [topic] = response.responses
    [data] = topic.partitions
    return topic.topic_id, data


def test_a_fetch_names_topics_by_id_from_v13(broker):
    produce(broker.bootstrap, "by-id", [b"one", b"two"])
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as sock:
        metadata = call(sock, MetadataRequest(
            topics=[MetadataRequest.MetadataRequestTopic(name="by-id")],
            allow_auto_topic_creation=False), MetadataResponse, 12)
        topic_id = metadata.topics[0].topic_id
        for version in (13, 14, 15):
            answered_id, data = fetch_by_id(sock, topic_id, version)
            assert answered_id == topic_id
            assert (data.error_code, data.high_watermark) == (0, 2), version
            assert b"one" in bytes(data.records) and b"two" in bytes(data.records)
        unknown = uuid.uuid4()
        answered_id, data = fetch_by_id(sock, unknown, 13)
        assert answered_id == unknown
        assert data.error_code == UNKNOWN_TOPIC_ID


def test_librdkafka_consumes_with_fetch_v13_or_newer(broker):
    produce(broker.bootstrap, "rdkafka-ids", [b"m%d" % i for i in range(50)])
    lines = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    logger = logging.getLogger("rdkafka-topic-ids")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(Collect())
    consumer = Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": "topic-ids",
        "auto.offset.reset": "earliest",
        "debug": "protocol",
        "logger": logger,
    })
    consumer.assign([TopicPartition("rdkafka-ids", 0, 0)])
    values = []
    for _ in range(40):
        for message in consumer.consume(num_messages=100, timeout=0.5):
            assert message.error() is None, message.error()
            values.append(message.value())
        if len(values) >= 50:
            break
    consumer.poll(0.5)
    consumer.close()
    assert values == [b"m%d" % i for i in range(50)]
    versions = {int(v) for v in re.findall(r"Sent FetchRequest \(v(\d+)", "\n".join(lines))}
    assert versions and min(versions) >= 13, versions
