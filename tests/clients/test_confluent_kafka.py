"""confluent-kafka (librdkafka 2.x) against the real broker: an idempotent
producer with acks=all and lz4, read back with an assigned consumer."""
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def consume(bootstrap, topic, partitions, expected):
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "unused-assign-only",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    messages = []
    idle = 0
    while len(messages) < expected and idle < 20:
        batch = consumer.consume(num_messages=1000, timeout=0.5)
        idle = idle + 1 if not batch else 0
        for m in batch:
            if m.error():
                raise KafkaException(m.error())
            messages.append(m)
    consumer.close()
    return messages


def test_idempotent_acks_all_lz4_round_trip(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.create_topics([NewTopic("idem", num_partitions=4, replication_factor=1)])
    futures["idem"].result(timeout=10)

    producer = Producer({
        "bootstrap.servers": broker.bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "linger.ms": 5,
    })
    delivered = []
    errors = []

    def on_delivery(err, msg):
        (errors if err else delivered).append(err or (msg.key(), msg.partition(), msg.offset()))

    for i in range(2000):
        producer.produce("idem", key=f"k{i % 17}", value=f"value-{i}", on_delivery=on_delivery)
        if i % 500 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0
    assert errors == []
    assert len(delivered) == 2000

    messages = consume(broker.bootstrap, "idem", 4, 2000)
    assert len(messages) == 2000
    for partition in range(4):
        offsets = [m.offset() for m in messages if m.partition() == partition]
        assert offsets == list(range(len(offsets)))
    by_key = {}
    for m in messages:
        assert by_key.setdefault(m.key(), m.partition()) == m.partition()
        values = [int(x.value().split(b"-")[1]) for x in messages if x.key() == m.key()]
        assert values == sorted(values)


def test_invalid_topic_name_is_refused(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.create_topics([NewTopic("bad/name", num_partitions=1, replication_factor=1)])
    try:
        futures["bad/name"].result(timeout=10)
        raise AssertionError("created a topic with an invalid name")
    except KafkaException as e:
        assert e.args[0].code() == 17  # INVALID_TOPIC_EXCEPTION


def test_large_fetches_from_segment_files_and_from_memory_arrive_intact(broker):
    """Fetch responses carry record sets from the log by reference (no copy
    into the response): megabytes of distinct payloads must come back byte
    for byte, read once from memory and once, after a restart, from the
    segment files."""
    import hashlib
    import os

    payloads = [os.urandom(1000 + i % 97) for i in range(6000)]
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20})
    for payload in payloads:
        producer.produce("big-fetch", value=payload)
    assert producer.flush(30) == 0
    digest = hashlib.sha256(b"".join(payloads)).hexdigest()

    def read_back():
        messages = consume(broker.bootstrap, "big-fetch", 1, len(payloads))
        assert [m.offset() for m in messages] == list(range(len(payloads)))
        return hashlib.sha256(b"".join(m.value() for m in messages)).hexdigest()

    assert read_back() == digest
    broker.restart()
    assert read_back() == digest
