"""The Kafka command-line tools built into the gregor binary, driven through
Kafka-named links as in the quickstart, and checked against real clients
(kafka-python, confluent-kafka, kcat)."""
import http.server
import json
import os
import signal
import subprocess
import threading
import time

import pytest
from confluent_kafka import Producer
from kafka import KafkaConsumer

from conftest import BIN, ROOT

TOOLS = [
    "kafka-topics.sh", "kafka-console-producer.sh", "kafka-console-consumer.sh",
    "kafka-consumer-groups.sh", "kafka-configs.sh", "kafka-server-start.sh",
]


@pytest.fixture
def links(tmp_path):
    """A directory of Kafka script names linked to the binary."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in TOOLS:
        (bin_dir / name).symlink_to(BIN)
    return bin_dir


def run(links, tool, *args, input=None, env=None, timeout=60):
    return subprocess.run(
        [str(links / tool), *args],
        input=input, capture_output=True, timeout=timeout,
        env=dict(os.environ, **(env or {})), cwd=links,
    )


def ok(result):
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def create(links, broker, topic, partitions=1):
    ok(run(links, "kafka-topics.sh", "--create", "--topic", topic, "--partitions",
           str(partitions), "--replication-factor", "1", "--bootstrap-server", broker.bootstrap))


def produce(links, broker, topic, lines, *extra):
    ok(run(links, "kafka-console-producer.sh", "--broker-list", broker.bootstrap,
           "--topic", topic, *extra, input="".join(f"{l}\n" for l in lines).encode()))


def consume(links, broker, topic, count, *extra):
    return ok(run(links, "kafka-console-consumer.sh", "--bootstrap-server", broker.bootstrap,
                  "--topic", topic, "--from-beginning", "--max-messages", str(count),
                  "--timeout-ms", "10000", *extra))


def kcat(broker, *args):
    result = subprocess.run(["kcat", "-b", broker.bootstrap, *args],
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def test_quickstart_verbatim_through_kafka_named_links(broker, links):
    out = ok(run(links, "kafka-topics.sh", "--create", "--topic", "test", "--partitions", "1",
                 "--replication-factor", "1", "--bootstrap-server", broker.bootstrap))
    assert out == "Created topic test.\n"
    assert ok(run(links, "kafka-topics.sh", "--list", "--bootstrap-server",
                  broker.bootstrap)).splitlines() == ["test"]
    produce(links, broker, "test", ["This is a message", "This is another message"])
    result = run(links, "kafka-console-consumer.sh", "--bootstrap-server", broker.bootstrap,
                 "--topic", "test", "--from-beginning", "--max-messages", "2")
    assert ok(result) == "This is a message\nThis is another message\n"
    assert "Processed a total of 2 messages" in result.stderr.decode()


def test_subcommands_work_without_links(broker):
    result = subprocess.run([str(BIN), "topics", "--create", "--topic", "sub", "--partitions",
                             "2", "--replication-factor", "1", "--bootstrap-server",
                             broker.bootstrap], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode() == "Created topic sub.\n"


def test_console_producer_lines_are_read_by_kafka_python_and_kcat(broker, links):
    create(links, broker, "lines", partitions=3)
    lines = [f"line {i}" for i in range(500)]
    produce(links, broker, "lines", lines, "--compression-codec", "gzip",
            "--producer-property", "acks=all")
    consumer = KafkaConsumer("lines", bootstrap_servers=broker.bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    seen = []
    for message in consumer:
        seen.append(message.value.decode())
        if len(seen) >= len(lines):
            break
    consumer.close()
    assert sorted(seen) == sorted(lines)
    out = kcat(broker, "-C", "-t", "lines", "-e")
    assert sorted(out.splitlines()) == sorted(lines)


def produce_requests(broker):
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{broker.admin_port}/metrics").read().decode()
    line = next(l for l in text.splitlines() if l.startswith('gregor_requests_total{api="Produce"}'))
    return int(line.split()[-1])


def test_piped_input_is_batched_not_sent_line_by_line(broker, links):
    create(links, broker, "batched")
    before = produce_requests(broker)
    produce(links, broker, "batched", [f"m{i}" for i in range(1000)])
    assert produce_requests(broker) - before < 20
    out = kcat(broker, "-C", "-t", "batched", "-e")
    assert out.splitlines() == [f"m{i}" for i in range(1000)]


def test_confluent_kafka_keyed_lz4_messages_print_with_keys(broker, links):
    create(links, broker, "keyed", partitions=3)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "lz4",
                         "linger.ms": 5, "partitioner": "murmur2_random"})
    for i in range(30):
        producer.produce("keyed", key=f"k{i}".encode(), value=f"v{i}".encode())
    assert producer.flush(10) == 0
    out = consume(links, broker, "keyed", 30, "--property", "print.key=true",
                  "--property", "key.separator=:")
    assert sorted(out.splitlines()) == sorted(f"k{i}:v{i}" for i in range(30))


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_every_compression_codec_is_readable_by_kcat(broker, links, codec):
    create(links, broker, f"z-{codec}")
    lines = [f"{codec} line {i} " * 5 for i in range(300)]
    produce(links, broker, f"z-{codec}", lines, "--compression-codec", codec)
    assert kcat(broker, "-C", "-t", f"z-{codec}", "-e").splitlines() == [l.rstrip("\n") for l in lines]


def partitions_by_key(broker, topic):
    out = kcat(broker, "-C", "-t", topic, "-e", "-f", "%k %p\n")
    return dict(line.split() for line in out.splitlines())


def test_keys_land_on_the_same_partitions_as_javas_murmur2(broker, links):
    create(links, broker, "ours", partitions=5)
    create(links, broker, "theirs", partitions=5)
    keys = [f"user-{i}" for i in range(60)] + ["a", "ab", "abc", "abcd", "abcde"]
    produce(links, broker, "ours", [f"{k}:x" for k in keys],
            "--property", "parse.key=true", "--property", "key.separator=:")
    producer = Producer({"bootstrap.servers": broker.bootstrap, "partitioner": "murmur2_random"})
    for k in keys:
        producer.produce("theirs", key=k.encode(), value=b"x")
    assert producer.flush(10) == 0
    ours, theirs = partitions_by_key(broker, "ours"), partitions_by_key(broker, "theirs")
    assert len(ours) == len(keys)
    assert ours == theirs


def test_describe_alter_and_delete(broker, links):
    boot = ("--bootstrap-server", broker.bootstrap)
    ok(run(links, "kafka-topics.sh", "--create", "--topic", "d", "--partitions", "2",
           "--replication-factor", "1", "--config", "retention.ms=60000", *boot))
    out = ok(run(links, "kafka-topics.sh", "--describe", "--topic", "d", *boot))
    lines = out.splitlines()
    assert lines[0] == "Topic:d\tPartitionCount:2\tReplicationFactor:1\tConfigs:retention.ms=60000"
    assert lines[1] == "\tTopic: d\tPartition: 0\tLeader: 0\tReplicas: 0\tIsr: 0"
    assert lines[2] == "\tTopic: d\tPartition: 1\tLeader: 0\tReplicas: 0\tIsr: 0"

    ok(run(links, "kafka-topics.sh", "--alter", "--topic", "d", "--partitions", "4", *boot))
    out = ok(run(links, "kafka-topics.sh", "--describe", "--topic", "d", *boot))
    assert "PartitionCount:4" in out.splitlines()[0]

    again = run(links, "kafka-topics.sh", "--create", "--topic", "d", "--partitions", "1",
                "--replication-factor", "1", *boot)
    assert again.returncode == 1
    assert len(again.stderr.decode().strip().splitlines()) == 1
    ok(run(links, "kafka-topics.sh", "--create", "--if-not-exists", "--topic", "d",
           "--partitions", "1", "--replication-factor", "1", *boot))

    ok(run(links, "kafka-topics.sh", "--delete", "--topic", "d", *boot))
    deadline = time.time() + 10
    while time.time() < deadline:
        if "d" not in ok(run(links, "kafka-topics.sh", "--list", *boot)).splitlines():
            break
        time.sleep(0.2)
    else:
        pytest.fail("topic d still listed after delete")
    missing = run(links, "kafka-topics.sh", "--delete", "--topic", "d", *boot)
    assert missing.returncode == 1
    ok(run(links, "kafka-topics.sh", "--delete", "--if-exists", "--topic", "d", *boot))


def test_replica_assignment_on_create_and_alter(broker, links):
    boot = ("--bootstrap-server", broker.bootstrap)
    ok(run(links, "kafka-topics.sh", "--create", "--topic", "ra", "--replica-assignment", "0,0",
           *boot))
    out = ok(run(links, "kafka-topics.sh", "--describe", "--topic", "ra", *boot))
    assert "PartitionCount:2\tReplicationFactor:1" in out.splitlines()[0]
    # As Kafka's tool: the whole topic's assignment, of which the new part is sent.
    ok(run(links, "kafka-topics.sh", "--alter", "--topic", "ra", "--partitions", "3",
           "--replica-assignment", "0,0,0", *boot))
    out = ok(run(links, "kafka-topics.sh", "--describe", "--topic", "ra", *boot))
    assert "PartitionCount:3" in out.splitlines()[0]

    unknown = run(links, "kafka-topics.sh", "--create", "--topic", "rb",
                  "--replica-assignment", "0:5", *boot)
    assert unknown.returncode == 1
    assert "broker 5, but no such broker is registered" in unknown.stderr.decode()
    both = run(links, "kafka-topics.sh", "--create", "--topic", "rb", "--partitions", "1",
               "--replica-assignment", "0", *boot)
    assert both.returncode != 0
    assert "can't be used with option \"[partitions]\"" in both.stderr.decode()


def test_bad_flag_is_one_line_and_exit_2(links):
    result = run(links, "kafka-topics.sh", "--craete", "--topic", "x")
    assert result.returncode == 2
    assert len(result.stderr.decode().strip().splitlines()) == 1
    assert "--craete" in result.stderr.decode()
    result = run(links, "kafka-topics.sh", "--list", "--describe", "--bootstrap-server", "h:1")
    assert result.returncode == 2


def test_unreachable_broker_is_one_line_and_non_zero(links):
    for tool, args in [
        ("kafka-topics.sh", ["--list", "--bootstrap-server", "127.0.0.1:1"]),
        ("kafka-console-producer.sh", ["--broker-list", "127.0.0.1:1", "--topic", "t"]),
        ("kafka-console-consumer.sh", ["--bootstrap-server", "127.0.0.1:1", "--topic", "t"]),
    ]:
        result = run(links, tool, *args, input=b"x\n")
        assert result.returncode not in (0, None), tool
        lines = result.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and "127.0.0.1:1" in lines[0], lines


def test_consumer_of_unknown_topic_fails_clearly(broker, links):
    result = run(links, "kafka-console-consumer.sh", "--bootstrap-server", broker.bootstrap,
                 "--topic", "nosuch", "--max-messages", "1")
    assert result.returncode == 1
    assert "nosuch" in result.stderr.decode()


def test_kafka_host_url_is_the_default_server(broker, links):
    env = {"kafka_host_url": broker.bootstrap}
    ok(run(links, "kafka-topics.sh", "--create", "--topic", "envy", "--partitions", "1",
           "--replication-factor", "1", env=env))
    assert "envy" in ok(run(links, "kafka-topics.sh", "--list", env=env)).splitlines()


def test_zookeeper_flag_finds_a_broker_through_the_coordinator(broker, links):
    body = json.dumps({"cluster_id": "c", "brokers": [{"id": 0, "listeners": [
        {"name": "PLAINTEXT", "host": "127.0.0.1", "port": broker.port}]}]}).encode()

    class Cluster(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            status = 200 if self.path == "/v1/cluster" else 404
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Cluster)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        zk = f"127.0.0.1:{server.server_address[1]}"
        ok(run(links, "kafka-topics.sh", "--create", "--topic", "viazk", "--partitions", "1",
               "--replication-factor", "1", "--zookeeper", zk))
        assert "viazk" in ok(run(links, "kafka-topics.sh", "--list", "--zookeeper", zk))
    finally:
        server.shutdown()


def test_partition_offset_and_print_properties(broker, links):
    create(links, broker, "props")
    produce(links, broker, "props", ["a", "b", "c", "d"])
    out = ok(run(links, "kafka-console-consumer.sh", "--bootstrap-server", broker.bootstrap,
                 "--topic", "props", "--partition", "0", "--offset", "2",
                 "--property", "print.offset=true", "--property", "print.partition=true",
                 "--timeout-ms", "2000"))
    assert out.splitlines() == ["Partition:0\tOffset:2\tc", "Partition:0\tOffset:3\td"]


def groups_supported():
    supported = ROOT / "src" / "protocol" / "supported.rs"
    return supported.exists() and "JoinGroup" in supported.read_text()


needs_groups = pytest.mark.skipif(not groups_supported(),
                                  reason="the broker does not implement the group APIs yet")


@needs_groups
def test_consumer_groups_list_describe_reset_delete(broker, links):
    boot = ("--bootstrap-server", broker.bootstrap)
    create(links, broker, "gt", partitions=2)
    produce(links, broker, "gt", [f"{k}:{i}" for i, k in enumerate("aabbccdd")],
            "--property", "parse.key=true", "--property", "key.separator=:")
    consume(links, broker, "gt", 8, "--group", "g1")
    assert "g1" in ok(run(links, "kafka-consumer-groups.sh", "--list", *boot)).splitlines()

    out = ok(run(links, "kafka-consumer-groups.sh", "--describe", "--group", "g1", *boot))
    rows = [line.split() for line in out.splitlines() if line.strip()]
    header = next(r for r in rows if r[0] == "GROUP")
    assert header == ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG",
                      "CONSUMER-ID", "HOST", "CLIENT-ID"]
    data = [r for r in rows if r[0] == "g1"]
    assert sorted(r[2] for r in data) == ["0", "1"]
    assert all(r[3] == r[4] and r[5] == "0" for r in data)

    dry = ok(run(links, "kafka-consumer-groups.sh", "--reset-offsets", "--group", "g1",
                 "--topic", "gt", "--to-earliest", *boot))
    assert [r.split()[3] for r in dry.splitlines() if r.startswith("g1")] == ["0", "0"]
    out = ok(run(links, "kafka-consumer-groups.sh", "--describe", "--group", "g1", *boot))
    assert all(r.split()[5] == "0" for r in out.splitlines() if r.startswith("g1"))

    ok(run(links, "kafka-consumer-groups.sh", "--reset-offsets", "--group", "g1", "--topic",
           "gt", "--to-earliest", "--execute", *boot))
    out = ok(run(links, "kafka-consumer-groups.sh", "--describe", "--group", "g1", *boot))
    assert sorted(r.split()[3] for r in out.splitlines() if r.startswith("g1")) == ["0", "0"]
    assert len(consume(links, broker, "gt", 8, "--group", "g1").splitlines()) == 8

    out = ok(run(links, "kafka-consumer-groups.sh", "--delete", "--group", "g1", *boot))
    assert "'g1'" in out and "successful" in out
    assert "g1" not in ok(run(links, "kafka-consumer-groups.sh", "--list", *boot)).splitlines()


@needs_groups
def test_sigint_commits_group_offsets_and_exits_0(broker, links):
    create(links, broker, "sig")
    produce(links, broker, "sig", ["one", "two", "three"])
    proc = subprocess.Popen(
        [str(links / "kafka-console-consumer.sh"), "--bootstrap-server", broker.bootstrap,
         "--topic", "sig", "--from-beginning", "--group", "sg"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    seen = [proc.stdout.readline().decode().strip() for _ in range(3)]
    assert seen == ["one", "two", "three"]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert "Processed a total of 3 messages" in err.decode()

    produce(links, broker, "sig", ["four"])
    out = ok(run(links, "kafka-console-consumer.sh", "--bootstrap-server", broker.bootstrap,
                 "--topic", "sig", "--from-beginning", "--group", "sg", "--max-messages", "1",
                 "--timeout-ms", "15000"))
    assert out == "four\n"


def test_native_section_with_coordinator_and_broker_from_config_files(tmp_path):
    """The tutorial's native section as printed, in a Kafka-shaped directory
    made by scripts/dist.sh's layout: coordinator and broker started by their
    scripts from config/*.properties (ports and directories moved so the test
    owns them), then create, list (both ways), produce, consume, stop."""
    from conftest import free_port, wait_for_port

    home = tmp_path / "kafka"
    bin_dir, config = home / "bin", home / "config"
    bin_dir.mkdir(parents=True)
    config.mkdir()
    for name in TOOLS + ["zookeeper-server-start.sh", "zookeeper-server-stop.sh",
                         "kafka-server-stop.sh"]:
        (bin_dir / name).symlink_to(BIN)
    zk_port, kafka_port, admin_port = free_port(), free_port(), free_port()
    zk = (ROOT / "config" / "zookeeper.properties").read_text()
    zk = zk.replace("dataDir=/tmp/gregor-coordinator", f"dataDir={tmp_path / 'zk'}")
    zk = zk.replace("clientPort=2181", f"clientPort={zk_port}")
    (config / "zookeeper.properties").write_text(zk)
    server = (ROOT / "config" / "server.properties").read_text()
    server = server.replace("log.dirs=/tmp/gregor-logs", f"log.dirs={tmp_path / 'logs'}")
    server = server.replace("zookeeper.connect=localhost:2181", f"zookeeper.connect=localhost:{zk_port}")
    server += f"\nlisteners=PLAINTEXT://localhost:{kafka_port}\nadmin.listener=127.0.0.1:{admin_port}\n"
    (config / "server.properties").write_text(server)

    def script(name, *args, **kwargs):
        return subprocess.run([f"./{name}", *args], cwd=bin_dir, capture_output=True, timeout=60,
                              **kwargs)

    logs = open(tmp_path / "servers.log", "wb")
    coordinator = subprocess.Popen(["./zookeeper-server-start.sh", "../config/zookeeper.properties"],
                                   cwd=bin_dir, stdout=logs, stderr=logs)
    broker = subprocess.Popen(["./kafka-server-start.sh", "../config/server.properties"],
                              cwd=bin_dir, stdout=logs, stderr=logs)
    try:
        wait_for_port(zk_port, coordinator)
        wait_for_port(kafka_port, broker)
        boot = f"localhost:{kafka_port}"
        created = script("kafka-topics.sh", "--create", "--topic", "test", "--partitions", "1",
                         "--replication-factor", "1", "--zookeeper", f"localhost:{zk_port}")
        assert created.stdout.decode() == "Created topic test.\n", created.stderr.decode()
        assert script("kafka-topics.sh", "--list", "--zookeeper",
                      f"localhost:{zk_port}").stdout.decode().split() == ["test"]
        assert script("kafka-topics.sh", "--list", "--bootstrap-server",
                      boot).stdout.decode().split() == ["test"]
        lines = b"This is a message\nThis is another message\n"
        produced = script("kafka-console-producer.sh", "--broker-list", boot, "--topic", "test",
                          input=lines)
        assert produced.returncode == 0, produced.stderr.decode()
        consumed = script("kafka-console-consumer.sh", "--bootstrap-server", boot, "--topic",
                          "test", "--from-beginning", "--max-messages", "2")
        assert consumed.stdout == lines
        via_zookeeper = script("kafka-console-consumer.sh", "--zookeeper", f"localhost:{zk_port}",
                               "--topic", "test", "--from-beginning", "--max-messages", "2")
        assert via_zookeeper.stdout == lines
    finally:
        # Kafka's stop scripts stop every broker and coordinator of this
        # machine, as Kafka's do; signal just the ones this test started.
        for process in (broker, coordinator):
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0
        logs.close()


def test_kafka_configs_describes_brokers_and_topics_and_alters_topics(make_broker, links):
    broker = make_broker(extra=["--override", "log.retention.minutes=30"])
    boot = ("--bootstrap-server", broker.bootstrap)
    out = ok(run(links, "kafka-configs.sh", "--describe", "--entity-type", "brokers",
                 "--entity-name", "0", "--all", *boot))
    lines = out.splitlines()
    assert lines[0] == "All configs for broker 0 are:"
    assert ("  log.retention.minutes=30 sensitive=false synonyms={"
            "STATIC_BROKER_CONFIG:log.retention.minutes=30, "
            "DEFAULT_CONFIG:log.retention.hours=168}") in lines
    assert "  log.retention.ms=null sensitive=false synonyms={}" in lines
    assert len(lines) > 100
    # Without --all only dynamic broker configs, and gregor has none.
    out = ok(run(links, "kafka-configs.sh", "--describe", "--broker", "0", *boot))
    assert out.splitlines() == ["Dynamic configs for broker 0 are:"]

    create(links, broker, "cfg")
    ok(run(links, "kafka-configs.sh", "--alter", "--entity-type", "topics", "--entity-name", "cfg",
           "--add-config", "retention.ms=1000,preallocate=true", *boot))
    out = ok(run(links, "kafka-configs.sh", "--describe", "--topic", "cfg", *boot))
    assert out.splitlines() == [
        "Dynamic configs for topic cfg are:",
        "  preallocate=true sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:preallocate=true, "
        "DEFAULT_CONFIG:log.preallocate=false}",
        "  retention.ms=1000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=1000, "
        "STATIC_BROKER_CONFIG:log.retention.minutes=30, DEFAULT_CONFIG:log.retention.hours=168}",
    ]
    ok(run(links, "kafka-configs.sh", "--alter", "--topic", "cfg", "--delete-config",
           "preallocate", *boot))
    out = ok(run(links, "kafka-configs.sh", "--describe", "--topic", "cfg", "--all", *boot))
    assert "  preallocate=false sensitive=false synonyms={DEFAULT_CONFIG:log.preallocate=false}" \
        in out.splitlines()
    bad = run(links, "kafka-configs.sh", "--alter", "--topic", "cfg", "--add-config",
              "segment.ms=0", *boot)
    assert bad.returncode == 1 and "segment.ms" in bad.stderr.decode()
