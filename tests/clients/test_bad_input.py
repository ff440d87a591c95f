"""Bad input: each gets Kafka's error or a closed connection, never a crash
or an allocation of the claimed size, and other clients carry on."""
import os
import socket
import struct
import subprocess

from kafka import KafkaProducer


def connect(broker):
    s = socket.create_connection(("127.0.0.1", broker.port), timeout=5)
    return s


def closed_by_broker(s):
    try:
        return s.recv(4096) == b""
    except ConnectionResetError:
        return True


def request(api_key, version, correlation_id, body=b"", client_id=b"t"):
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


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
