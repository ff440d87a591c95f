"""ListOffsets by timestamp finds the record inside a batch, not just the
batch: two records produced in one batch with timestamps 1234 and
999999999999, and a lookup for the second returns offset 1 with that
record's timestamp."""
import struct

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

EARLY, LATE = 1234, 999999999999


def two_records_in_one_batch(broker, topic):
    bootstrap = broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(10)
    # A long linger and one flush: both records leave in the same batch.
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 500})
    delivered = []
    for value, timestamp in ((b"early", EARLY), (b"late", LATE)):
        producer.produce(topic, value=value, partition=0, timestamp=timestamp,
                         on_delivery=lambda err, msg: delivered.append((err, msg.offset())))
    assert producer.flush(10) == 0
    assert delivered == [(None, 0), (None, 1)]
    # The first batch in the segment holds both (last offset delta 1).
    segment = (broker.data_dir / f"{topic}-0" / f"{0:020}.log").read_bytes()
    base_offset, length = struct.unpack_from(">qi", segment, 0)
    (last_offset_delta,) = struct.unpack_from(">i", segment, 23)
    assert (base_offset, last_offset_delta, len(segment)) == (0, 1, 12 + length)


def test_confluent_offsets_for_times_finds_the_record_inside_the_batch(broker):
    two_records_in_one_batch(broker, "times")
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "times"})
    try:
        found = consumer.offsets_for_times([TopicPartition("times", 0, LATE)], timeout=10)
        assert found[0].offset == 1
        found = consumer.offsets_for_times([TopicPartition("times", 0, 1235)], timeout=10)
        assert found[0].offset == 1
        found = consumer.offsets_for_times([TopicPartition("times", 0, EARLY)], timeout=10)
        assert found[0].offset == 0
        # Past every record: Kafka answers -1, which librdkafka reports as the end.
        found = consumer.offsets_for_times([TopicPartition("times", 0, LATE + 1)], timeout=10)
        assert found[0].offset == -1
    finally:
        consumer.close()


def test_kafka_python_offsets_for_times_reports_the_records_timestamp(broker):
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition as KTopicPartition

    two_records_in_one_batch(broker, "times-kp")
    tp = KTopicPartition("times-kp", 0)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    try:
        found = consumer.offsets_for_times({tp: LATE})[tp]
        assert (found.offset, found.timestamp) == (1, LATE)
        found = consumer.offsets_for_times({tp: EARLY + 1})[tp]
        assert (found.offset, found.timestamp) == (1, LATE)
        found = consumer.offsets_for_times({tp: 0})[tp]
        assert (found.offset, found.timestamp) == (0, EARLY)
        assert consumer.offsets_for_times({tp: LATE + 1})[tp] is None
    finally:
        consumer.close()


def test_records_below_the_log_start_are_not_found(broker):
    """After DeleteRecords up to 1, the batch straddles the log start: the
    first record at or after 1234 that is still in the log is offset 1, as
    Kafka answers; with the whole batch deleted nothing is found."""
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition as KTopicPartition

    two_records_in_one_batch(broker, "times-start")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    (future,) = admin.delete_records([TopicPartition("times-start", 0, 1)]).values()
    assert future.result(10).low_watermark == 1
    tp = KTopicPartition("times-start", 0)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    try:
        found = consumer.offsets_for_times({tp: EARLY})[tp]
        assert (found.offset, found.timestamp) == (1, LATE)
        (future,) = admin.delete_records([TopicPartition("times-start", 0, 2)]).values()
        assert future.result(10).low_watermark == 2
        assert consumer.offsets_for_times({tp: EARLY})[tp] is None
    finally:
        consumer.close()
