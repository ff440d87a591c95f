"""kafka-python 3.0.12 against the real broker: the tutorial's producer
(api_version=(0,10,1), JSON values) and auto-detected versions."""
import json

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic


def read_all(bootstrap, topic, expected, **kwargs):
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
        **kwargs,
    )
    messages = []
    for message in consumer:
        messages.append(message)
        if len(messages) >= expected:
            break
    consumer.close()
    return messages


def test_tutorial_producer_with_api_version_0_10_1_and_json(broker):
    # The tutorial's send_to_kafka_topic, unchanged in spirit.
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap,
        api_version=(0, 10, 1),
        value_serializer=lambda v: json.dumps(v).encode("utf-8"),
    )
    sent = [{"id": i, "text": f"message {i}"} for i in range(50)]
    for value in sent:
        producer.send("tutorial", value)
    producer.flush()
    producer.close()

    messages = read_all(
        broker.bootstrap,
        "tutorial",
        len(sent),
        api_version=(0, 10, 1),
        value_deserializer=lambda v: json.loads(v.decode("utf-8")),
    )
    assert [m.value for m in messages] == sent
    assert [m.offset for m in messages] == list(range(len(sent)))


def test_auto_detected_versions_round_trip_with_keys_and_headers(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("keyed", num_partitions=3, replication_factor=1)])
    admin.close()

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    partitions_of = {}
    for i in range(90):
        key = f"key-{i % 9}".encode()
        meta = producer.send(
            "keyed", key=key, value=f"v{i}".encode(), headers=[("h", b"1")]
        ).get(timeout=10)
        # Keys hash to a stable partition.
        assert partitions_of.setdefault(key, meta.partition) == meta.partition
    producer.close()
    assert len(set(partitions_of.values())) > 1

    messages = read_all(broker.bootstrap, "keyed", 90)
    assert len(messages) == 90
    for partition in range(3):
        in_partition = [m for m in messages if m.partition == partition]
        assert [m.offset for m in in_partition] == list(range(len(in_partition)))
        assert all(partitions_of[m.key] == partition for m in in_partition)
    # Order per key is the order sent.
    for key in partitions_of:
        values = [int(m.value[1:]) for m in messages if m.key == key]
        assert values == sorted(values)
    assert all(m.headers == [("h", b"1")] for m in messages)


def test_seek_to_offset_and_timestamp_lookup(broker):
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(10):
        producer.send("seek", value=str(i).encode(), timestamp_ms=1_700_000_000_000 + i * 1000)
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, consumer_timeout_ms=3000)
    tp = TopicPartition("seek", 0)
    consumer.assign([tp])
    assert consumer.beginning_offsets([tp])[tp] == 0
    assert consumer.end_offsets([tp])[tp] == 10
    found = consumer.offsets_for_times({tp: 1_700_000_004_500})[tp]
    assert found.offset == 5
    consumer.seek(tp, 7)
    assert [m.value for m in consumer] == [b"7", b"8", b"9"]
    consumer.close()
