"""Topic administration and produce/fetch limits through real clients."""
import subprocess
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient


def test_create_list_grow_and_delete_topics(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("grow", 2, 1), NewTopic("doomed", 1, 1)])["grow"].result(10)
    assert {"grow", "doomed"} <= set(admin.list_topics(timeout=10).topics)

    admin.create_partitions([NewPartitions("grow", 5)])["grow"].result(10)
    assert len(admin.list_topics(timeout=10).topics["grow"].partitions) == 5
    shrink = admin.create_partitions([NewPartitions("grow", 3)])["grow"]
    try:
        shrink.result(10)
        raise AssertionError("shrinking a topic was accepted")
    except Exception as e:
        assert "INVALID_PARTITIONS" in str(e) or "partitions" in str(e).lower()

    duplicate = admin.create_topics([NewTopic("grow", 1, 1)])["grow"]
    try:
        duplicate.result(10)
        raise AssertionError("duplicate topic was accepted")
    except Exception as e:
        assert "TOPIC_ALREADY_EXISTS" in str(e) or "already exists" in str(e)

    kafka_admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    kafka_admin.delete_topics(["doomed"])
    kafka_admin.close()
    deadline = time.time() + 5
    while "doomed" in admin.list_topics(timeout=10).topics and time.time() < deadline:
        time.sleep(0.1)
    assert "doomed" not in admin.list_topics(timeout=10).topics
    assert not (broker.data_dir / "doomed-0").exists()


def test_too_many_replicas_is_refused(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    future = admin.create_topics([NewTopic("replicated", 1, 3)])["replicated"]
    try:
        future.result(10)
        raise AssertionError("replication factor 3 accepted on one broker")
    except Exception as e:
        assert "INVALID_REPLICATION_FACTOR" in str(e) or "replication" in str(e).lower()


def test_acks_0_produce_gets_no_response_and_is_stored(broker):
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": 0, "linger.ms": 0})
    for i in range(100):
        producer.produce("fire-and-forget", value=str(i).encode())
    producer.flush(10)
    # acks=0 is done once sent: the broker may still be appending, so read
    # until all are there (a refused produce closes the connection instead,
    # and its records never come).
    expected = [str(i) for i in range(100)]
    deadline = time.time() + 10
    while True:
        out = subprocess.run(["kcat", "-b", broker.bootstrap, "-C", "-t", "fire-and-forget", "-e"],
                             capture_output=True, text=True, timeout=30)
        if out.stdout.splitlines() == expected or time.time() > deadline:
            break
        time.sleep(0.2)
    assert out.stdout.splitlines() == expected, broker.output()[-3000:]
    assert "acks=0 producer whose records were refused" not in broker.output()


def test_small_fetch_limits_still_make_progress_through_large_batches(broker):
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, batch_size=256 * 1024,
                             linger_ms=50, max_request_size=4 * 1024 * 1024)
    for i in range(200):
        producer.send("big", value=bytes([i % 256]) * 10_000)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, fetch_max_bytes=1024,
                             max_partition_fetch_bytes=1024, consumer_timeout_ms=5000,
                             auto_offset_reset="earliest")
    consumer.assign([TopicPartition("big", 0)])
    got = [m.offset for m in consumer]
    consumer.close()
    assert got == list(range(200))


def test_produce_to_unknown_partition_fails_cleanly(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic("one", 1, 1)])["one"].result(10)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 2000})
    errors = []
    producer.produce("one", value=b"x", partition=7, on_delivery=lambda err, msg: errors.append(err))
    producer.flush(10)
    assert errors and errors[0] is not None
