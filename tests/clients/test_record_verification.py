"""Produced batches are checked against their records before they get
offsets: a header that lies about its record count is refused, and a small
compressed batch that expands past the cap is refused without the broker
ever holding it decompressed."""
import socket
import struct

from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as ConfluentPartition
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.record import _crc32c

from conftest import read_response, request, rss_kib


def forged_empty_batch(record_count):
    """A 61-byte v2 batch with no records whose header claims `record_count`
    and a matching last offset delta, with a valid CRC."""
    after_crc = struct.pack(">hiqqqhii", 0, record_count - 1, 1000, 1000, -1, -1, -1, record_count)
    crc = _crc32c.crc(after_crc)
    return struct.pack(">qiibI", 0, 49, 0, 2, crc) + after_crc


def produce_v3(topic, partition, records):
    name = topic.encode()
    body = struct.pack(">hhi", -1, 1, 10000)           # transactional id null, acks 1, timeout
    body += struct.pack(">ih", 1, len(name)) + name     # one topic
    body += struct.pack(">iii", 1, partition, len(records)) + records
    return request(0, 3, 42, body)


def produce_error_code(response, topic):
    # correlation id, [topic name, [partition, error, base offset, log append time]]
    at = 4 + 4
    name_len = struct.unpack(">h", response[at:at + 2])[0]
    at += 2 + name_len + 4
    _partition, error = struct.unpack(">ih", response[at:at + 6])
    return error


def test_a_batch_claiming_two_billion_records_is_refused_and_the_partition_stays_readable(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("forged", 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, api_version=(0, 10, 1))
    assert producer.send("forged", b"first").get(timeout=10).offset == 0

    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        s.sendall(produce_v3("forged", 0, forged_empty_batch(2**31 - 1)))
        assert produce_error_code(read_response(s), "forged") == 2  # CORRUPT_MESSAGE

    # The log end did not move: the next message gets offset 1, and the
    # tutorial's client reads both.
    assert producer.send("forged", b"second").get(timeout=10).offset == 1
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, api_version=(0, 10, 1),
                             auto_offset_reset="earliest", consumer_timeout_ms=3000)
    tp = TopicPartition("forged", 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    assert [(m.offset, m.value) for m in consumer] == [(0, b"first"), (1, b"second")]
    assert consumer.end_offsets([tp])[tp] == 2
    consumer.close()


def test_a_compressed_batch_expanding_past_the_cap_is_refused(make_broker):
    cap = 8 << 20
    broker = make_broker(extra=["--override", f"gregor.message.max.decompressed.bytes={cap}"])
    rss_before = rss_kib(broker.proc.pid)
    results = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "zstd",
                         "message.max.bytes": 100_000_000, "linger.ms": 0,
                         "message.send.max.retries": 0})
    report = lambda err, msg: results.append((len(msg.value()), err))
    producer.produce("bombs", b"\0" * (4 << 20), on_delivery=report)   # fits: accepted
    producer.flush(30)
    producer.produce("bombs", b"\0" * (64 << 20), on_delivery=report)  # ~2 KiB on the wire
    producer.flush(30)
    assert results[0] == (4 << 20, None)
    size, error = results[1]
    assert size == 64 << 20 and error is not None
    assert error.code() == -10 or "too large" in error.str().lower(), error  # MSG_SIZE_TOO_LARGE

    # The bomb was streamed through the cap, never held whole.
    assert rss_kib(broker.proc.pid) < rss_before + 48 * 1024
    # The accepted batch is found by its timestamp (a lookup that
    # decompresses it, bounded by the same cap) and reads back whole.
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "bombs",
                         "fetch.max.bytes": 16 << 20, "max.partition.fetch.bytes": 16 << 20})
    found = consumer.offsets_for_times([ConfluentPartition("bombs", 0, 0)], timeout=10)
    assert found[0].offset == 0
    consumer.assign([ConfluentPartition("bombs", 0, 0)])
    msg = consumer.poll(10)
    assert msg is not None and msg.error() is None and len(msg.value()) == 4 << 20
    consumer.close()


def fetch_v0(topic, partition, offset, partition_max_bytes):
    name = topic.encode()
    body = struct.pack(">iii", -1, 100, 1)
    body += struct.pack(">ih", 1, len(name)) + name
    body += struct.pack(">iiqi", 1, partition, offset, partition_max_bytes)
    return request(1, 0, 7, body)


def test_fetch_v0_is_bounded_by_the_brokers_fetch_max_bytes(make_broker):
    broker = make_broker(extra=["--override", "fetch.max.bytes=1048576"])
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, max_request_size=2 << 20)
    for i in range(8):
        producer.send("big", bytes([i]) * (400 << 10))
    producer.flush()
    producer.close()
    with socket.create_connection(("127.0.0.1", broker.port), timeout=10) as s:
        # Fetch v0 has no response-wide limit: it asks for 100 MiB.
        s.sendall(fetch_v0("big", 0, 0, 100 << 20))
        response = read_response(s)
    # Two 400 KiB messages fit in 1 MiB; the whole log (3.2 MiB) does not.
    assert 800 << 10 < len(response) <= (1 << 20) + 1024
