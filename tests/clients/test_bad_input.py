"""Bad input: each gets Kafka's error or a closed connection, never a crash
or an allocation of the claimed size, and other clients carry on."""
import os
import signal
import socket
import struct
import subprocess
import zlib

from conftest import BIN, Broker, read_response, request, rss_kib
from kafka import KafkaProducer


def connect(broker):
    s = socket.create_connection(("127.0.0.1", broker.port), timeout=5)
    return s


def closed_by_broker(s):
    try:
        return s.recv(4096) == b""
    except ConnectionResetError:
        return True


def test_unsupported_api_versions_version_gets_error_35_with_v0_body(broker):
    s = connect(broker)
    s.sendall(request(18, 99, 7))
    size = struct.unpack(">i", s.recv(4))[0]
    body = b""
    while len(body) < size:
        body += s.recv(size - len(body))
    correlation_id, error_code, count = struct.unpack(">ihi", body[:10])
    assert correlation_id == 7
    assert error_code == 35
    keys = [struct.unpack(">hhh", body[10 + 6 * i: 16 + 6 * i]) for i in range(count)]
    assert (18, 0, 4) in keys
    s.close()


def test_hostile_frames_close_only_their_connection(broker):
    bystander = KafkaProducer(bootstrap_servers=broker.bootstrap)
    bystander.send("steady", b"before").get(timeout=10)
    rss_before = rss_kib(broker.proc.pid)

    hostile = [
        struct.pack(">i", -5),                              # negative size
        struct.pack(">i", 2**31 - 1),                       # 2 GB claimed
        struct.pack(">i", 16) + os.urandom(16),             # garbage
        request(999, 0, 1),                                 # unknown API key
        request(3, 99, 1),                                  # Metadata v99
        request(0, 7, 1, body=b"\x01\x02"),                 # truncated Produce body
        struct.pack(">i", 3) + b"abc",                      # too short for a header
        # Produce v3 claiming 2^31-1 topics in a 30-byte frame.
        request(0, 3, 1, body=struct.pack(">hhii", -1, 1, 1000, 2**31 - 1)),
    ]
    for frame in hostile:
        s = connect(broker)
        s.sendall(frame)
        assert closed_by_broker(s), frame[:12]
        s.close()

    # A request cut off mid-frame, then the client goes away.
    s = connect(broker)
    s.sendall(struct.pack(">i", 100) + b"\x00" * 20)
    s.close()

    assert broker.proc.poll() is None
    assert rss_kib(broker.proc.pid) < rss_before + 50 * 1024
    assert bystander.send("steady", b"after").get(timeout=10).offset == 1
    bystander.close()
    out = subprocess.run(["kcat", "-b", broker.bootstrap, "-L"], capture_output=True, timeout=30)
    assert out.returncode == 0


def test_invalid_topic_names_get_invalid_topic_exception(broker):
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import InvalidTopicError

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    for name in ["bad name", "..", "x" * 250, "ünïcode"]:
        try:
            admin.create_topics([NewTopic(name, 1, 1)])
            raise AssertionError(f"accepted {name!r}")
        except InvalidTopicError:
            pass
    admin.close()


def test_bad_config_value_exits_2_with_one_line(tmp_path):
    from conftest import BIN
    result = subprocess.run(
        [str(BIN), "broker", "--data-dir", str(tmp_path), "--override", "log.retention.hours=soon"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    lines = [l for l in result.stderr.splitlines() if "log.retention.hours" in l]
    assert len(lines) == 1 and "soon" in lines[0]


def test_second_broker_on_a_busy_port_says_so(broker, tmp_path):
    from conftest import BIN
    result = subprocess.run(
        [str(BIN), "broker", "--data-dir", str(tmp_path / "other"),
         "--listeners", f"PLAINTEXT://127.0.0.1:{broker.port}", "--admin", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "address already in use" in result.stderr


# --- Claimed counts under an address-space limit -----------------------------
#
# kafka-protocol 0.15.1 reserves what a count claims before reading what it
# counts (patches/kafka-protocol bounds that). Without a memory limit a
# lazily committed mapping can hide such a reservation; under one it fails
# and the whole process aborts. These frames go to a broker started under
# `prlimit --as` (util-linux), so a claimed count that sizes an allocation
# kills it.

# The debug binary idles at about 1.4 GB of virtual memory (mostly mimalloc's
# reservations and thread stacks); 4 GiB leaves room for normal work and is
# far below the 38-480 GB the frames below claim.
ADDRESS_SPACE_LIMIT = 4 << 30


class LimitedBroker(Broker):
    """A broker whose process runs under an address-space limit (prlimit
    execs it, so the pid is the broker's)."""

    def args(self):
        return ["prlimit", f"--as={ADDRESS_SPACE_LIMIT}", "--", *super().args()]


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def varint(n):
    """Kafka's zigzag varint (records use signed varints)."""
    n = (n << 1) ^ (n >> 63)
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def legacy_message(value):
    """One uncompressed magic-1 message with offset 0."""
    body = struct.pack(">bbqi", 1, 0, 1_700_000_000_000, -1) + struct.pack(">i", len(value)) + value
    message = struct.pack(">I", zlib.crc32(body)) + body
    return struct.pack(">qi", 0, len(message)) + message


def v2_batch(records, record_count):
    """A magic-2 batch around raw `records`, with a correct CRC-32C."""
    after_crc = struct.pack(">hiqqqhii", 0, 0, 1_700_000_000_000, 1_700_000_000_000,
                            -1, -1, -1, record_count) + records
    rest = struct.pack(">ib", 0, 2) + struct.pack(">I", crc32c(after_crc)) + after_crc
    return struct.pack(">qi", 0, len(rest)) + rest


def record(header_count):
    """A record with value b"v" claiming `header_count` headers and holding none."""
    body = b"\x00" + varint(0) + varint(0) + varint(-1) + varint(1) + b"v" + varint(header_count)
    return varint(len(body)) + body


def produce_v2(correlation_id, topic, records, acks=1):
    body = struct.pack(">hi", acks, 5000)
    body += struct.pack(">ih", 1, len(topic)) + topic
    body += struct.pack(">iii", 1, 0, len(records)) + records
    return request(0, 2, correlation_id, body)


def produce_v2_error_code(response):
    # correlation id, [topic name, [partition, error_code, ...]]
    (name_len,) = struct.unpack(">h", response[8:10])
    at = 10 + name_len + 4
    _partition, error_code = struct.unpack(">ih", response[at:at + 6])
    return error_code


def api_versions_round_trip(broker):
    s = connect(broker)
    s.sendall(request(18, 0, 42))
    response = read_response(s)
    s.close()
    correlation_id, error_code = struct.unpack(">ih", response[:6])
    return correlation_id == 42 and error_code == 0


def test_claimed_counts_cannot_kill_a_broker_under_an_address_space_limit(tmp_path):
    broker = LimitedBroker(tmp_path / "data").start()
    try:
        limits = open(f"/proc/{broker.proc.pid}/limits").read()
        assert str(ADDRESS_SPACE_LIMIT) in limits
        bystander = KafkaProducer(bootstrap_servers=broker.bootstrap)
        bystander.send("steady", b"before").get(timeout=10)

        closing = {
            # The 14-byte CreateTopics v4 of the incident: null client id,
            # then a topics count of 2^31-1 (240 GB of CreatableTopic).
            "CreateTopics v4, 2^31-1 topics":
                struct.pack(">ihhihi", 14, 19, 4, 1, -1, 2**31 - 1),
            # CreateTopics v5 is flexible: header v2 ends with an empty tagged
            # field section, and the compact array's varint u32::MAX claims
            # u32::MAX-1 topics (480 GB).
            "CreateTopics v5, u32::MAX-1 topics (compact)":
                request(19, 5, 2, body=b"\x00" + b"\xff\xff\xff\xff\x0f"),
        }
        for what, frame in closing.items():
            s = connect(broker)
            s.sendall(frame)
            assert closed_by_broker(s), what
            s.close()
            assert broker.proc.poll() is None, f"{what} killed the broker"

        # Produce v2 with a legacy message first is converted up to v2, which
        # decodes every record of the set; the v2 batch behind the legacy
        # message claims 2^31-1 headers on its one record (38 GB of header
        # map), or 2^31-1 records (377 GB). Each gets an error for its
        # partition on a connection that stays open.
        records = {
            "a record claiming 2^31-1 headers": v2_batch(record(2**31 - 1), 1),
            "a batch claiming 2^31-1 records": v2_batch(record(0), 2**31 - 1),
        }
        for correlation_id, (what, batch) in enumerate(records.items(), start=10):
            s = connect(broker)
            s.sendall(produce_v2(correlation_id, b"steady", legacy_message(b"ok") + batch))
            response = read_response(s)
            assert struct.unpack(">i", response[:4])[0] == correlation_id
            assert produce_v2_error_code(response) == 2, what  # CORRUPT_MESSAGE
            s.close()
            assert broker.proc.poll() is None, f"{what} killed the broker"

        assert api_versions_round_trip(broker)
        assert bystander.send("steady", b"after").get(timeout=10).offset == 1
        bystander.close()
        assert broker.proc.poll() is None
    finally:
        broker.stop(signal.SIGKILL)


def test_acks0_produce_that_fails_closes_the_connection_as_kafka_does(broker):
    """With acks=0 there is no response to carry an error, so Kafka closes
    the connection and the producer refreshes its metadata; a produce that
    succeeds leaves the connection open and unanswered."""
    topic = b"acks-zero"
    subprocess.run([str(BIN), "topics", "--create", "--topic", topic.decode(),
                    "--bootstrap-server", broker.bootstrap], check=True, capture_output=True)
    batch = v2_batch(record(0), 1)
    s = connect(broker)
    s.sendall(produce_v2(1, topic, batch, acks=0))
    s.sendall(request(18, 0, 2))
    # The only answer is ApiVersions': the produce got none.
    correlation_id, error_code = struct.unpack(">ih", read_response(s)[:6])
    assert (correlation_id, error_code) == (2, 0)
    s.sendall(produce_v2(3, b"no-such-topic", batch, acks=0))
    s.settimeout(10)
    assert closed_by_broker(s)
    s.close()
    assert api_versions_round_trip(broker), "only that connection closed"
    assert "acks=0 producer whose records were refused topic=no-such-topic" in broker.output()
