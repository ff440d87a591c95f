"""`gregor coordinator` as its own process, and brokers that use it
(`zookeeper.connect`): real processes, kafka-python clients, and the
coordinator's HTTP API read with urllib as `curl` would."""
import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from conftest import BIN, Broker, GregorProcess, free_port, wait_for_port


class Coordinator(GregorProcess):
    """A `gregor coordinator` process on loopback."""

    def __init__(self, data_dir, port=None):
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.log_path = self.data_dir.parent / f"coordinator-{self.port}.log"

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def args(self):
        return [str(BIN), "coordinator", "--port", str(self.port), "--data-dir", str(self.data_dir)]

    def get(self, path):
        with urllib.request.urlopen(f"http://{self.address}{path}", timeout=5) as reply:
            return json.loads(reply.read())

    def cluster(self):
        return self.get("/v1/cluster")


@pytest.fixture
def processes(tmp_path):
    """Makes coordinators and brokers pointed at them; kills all at the end."""
    started = []

    class Make:
        def coordinator(self, port=None, data_dir=None, start=True):
            c = Coordinator(data_dir or tmp_path / f"coordinator{len(started)}", port)
            started.append(c)
            return c.start() if start else c

        def broker(self, coordinator, start=True, data_dir=None):
            b = Broker(
                data_dir or tmp_path / f"broker{len(started)}",
                extra=["--override", f"zookeeper.connect={coordinator.address}"],
            )
            started.append(b)
            if not start:
                return b
            return b.start()

    yield Make()
    for process in started:
        try:
            process.stop(signal.SIGKILL)
        except Exception:
            pass


def wait_until(condition, timeout=15.0, interval=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def create_topic(bootstrap, name, partitions=1):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


def produce(bootstrap, topic, values):
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for value in values:
        producer.send(topic, value)
    producer.flush()
    producer.close()


def consume(bootstrap, topic, expected):
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=8000
    )
    values = []
    for message in consumer:
        values.append(message.value)
        if len(values) >= expected:
            break
    consumer.close()
    return values


def broker_entry(cluster, broker_id=0):
    return next(b for b in cluster["brokers"] if b["id"] == broker_id)


def topic_entry(cluster, name):
    return next((t for t in cluster["topics"] if t["name"] == name), None)


def test_broker_with_a_coordinator_serves_clients_and_the_cluster_view_shows_both(processes):
    coordinator = processes.coordinator()
    broker = processes.broker(coordinator)
    create_topic(broker.bootstrap, "orders", partitions=2)
    produce(broker.bootstrap, "orders", [f"m{i}".encode() for i in range(20)])
    assert sorted(consume(broker.bootstrap, "orders", 20)) == sorted(f"m{i}".encode() for i in range(20))

    cluster = coordinator.cluster()
    assert len(cluster["cluster_id"]) == 22
    me = broker_entry(cluster)
    assert me["fenced"] is False and me["epoch"] >= 1
    assert me["listeners"] == [
        {"name": "PLAINTEXT", "host": "127.0.0.1", "port": broker.port, "security_protocol": "PLAINTEXT"}
    ]
    orders = topic_entry(cluster, "orders")
    assert [p["partition"] for p in orders["partitions"]] == [0, 1]
    assert all(p["leader"] == 0 for p in orders["partitions"])
    with urllib.request.urlopen(f"http://{coordinator.address}/readyz", timeout=5) as reply:
        assert reply.status == 200
    with urllib.request.urlopen(f"http://{coordinator.address}/metrics", timeout=5) as reply:
        assert b"gregor_coordinator_topics 1" in reply.read()


def test_broker_started_before_its_coordinator_waits_then_serves(processes, tmp_path):
    coordinator = processes.coordinator(start=False)
    broker = processes.broker(coordinator, start=False)
    broker.log = open(broker.log_path, "ab")
    broker.proc = subprocess.Popen(broker.args(), env=broker.env, stdout=broker.log, stderr=broker.log)
    retry = f"coordinator {coordinator.address} not reachable yet (connection refused); retrying in 1s"
    wait_until(lambda: retry in broker.output(), timeout=10)
    assert broker.proc.poll() is None

    coordinator.start()
    wait_for_port(broker.port, broker.proc)
    create_topic(broker.bootstrap, "late")
    produce(broker.bootstrap, "late", [b"hello"])
    assert consume(broker.bootstrap, "late", 1) == [b"hello"]


def test_coordinator_restart_keeps_topics_and_the_broker_resyncs(processes):
    coordinator = processes.coordinator()
    broker = processes.broker(coordinator)
    create_topic(broker.bootstrap, "before")
    produce(broker.bootstrap, "before", [b"a"])
    topic_id = topic_entry(coordinator.cluster(), "before")["topic_id"]

    coordinator.stop(signal.SIGKILL)
    # The broker keeps serving its last metadata while the coordinator is down.
    produce(broker.bootstrap, "before", [b"b"])
    coordinator.start()

    assert topic_entry(coordinator.cluster(), "before")["topic_id"] == topic_id
    assert broker_entry(coordinator.cluster())["fenced"] is False
    create_topic(broker.bootstrap, "after")
    assert topic_entry(coordinator.cluster(), "after") is not None
    produce(broker.bootstrap, "after", [b"c"])
    assert consume(broker.bootstrap, "after", 1) == [b"c"]
    assert consume(broker.bootstrap, "before", 2) == [b"a", b"b"]


def test_idempotent_producer_waits_out_a_missing_coordinator(processes):
    """With no coordinator to hand out producer ids, InitProducerId answers
    COORDINATOR_LOAD_IN_PROGRESS, as Kafka does, and kafka-python's idempotent
    producer retries it until the coordinator is back (with
    COORDINATOR_NOT_AVAILABLE it asked for a transaction coordinator with a
    null key and never recovered)."""
    coordinator = processes.coordinator()
    broker = processes.broker(coordinator)
    create_topic(broker.bootstrap, "ids")
    coordinator.stop(signal.SIGKILL)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True, acks="all")
    sent = producer.send("ids", b"after the coordinator returns")
    time.sleep(2)
    assert not sent.is_done
    coordinator.start()
    assert sent.get(timeout=30).offset == 0
    producer.close()
    assert "could not allocate producer ids" in broker.output()


def test_broker_restart_registers_with_a_higher_epoch(processes):
    coordinator = processes.coordinator()
    broker = processes.broker(coordinator)
    first = broker_entry(coordinator.cluster())["epoch"]
    broker.restart()
    second = broker_entry(coordinator.cluster())
    assert second["epoch"] > first
    assert second["fenced"] is False


def test_silent_broker_is_fenced_and_unfenced_when_heartbeats_resume(processes):
    coordinator = processes.coordinator()
    broker = processes.broker(coordinator)
    assert broker_entry(coordinator.cluster())["fenced"] is False
    broker.proc.send_signal(signal.SIGSTOP)
    try:
        stopped = time.time()
        wait_until(lambda: broker_entry(coordinator.cluster())["fenced"], timeout=12)
        # Leases run out after 9 s of silence, not before.
        assert time.time() - stopped > 8
    finally:
        broker.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: not broker_entry(coordinator.cluster())["fenced"], timeout=5)
    assert "fenced broker: no heartbeat for 9s" in coordinator.output()


def test_second_coordinator_on_a_busy_port_fails_in_one_line(processes, tmp_path):
    coordinator = processes.coordinator()
    second = subprocess.run(
        [str(BIN), "coordinator", "--port", str(coordinator.port), "--data-dir", str(tmp_path / "other")],
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert second.returncode != 0
    lines = second.stderr.strip().splitlines()
    assert lines == [
        f"gregor coordinator: cannot listen on 0.0.0.0:{coordinator.port}: "
        "address already in use (is another coordinator running?)"
    ]
    assert not (tmp_path / "other").exists()


def test_bad_coordinator_config_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run(
        [str(BIN), "coordinator", "--override", "maxClientCnxns=lots", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        'gregor: invalid value "lots" for maxClientCnxns (from command line): expected an integer'
    ]


def test_zookeeper_properties_starts_a_coordinator(tmp_path):
    root = Path(__file__).resolve().parents[2]
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN), "coordinator", str(root / "config" / "zookeeper.properties"),
         "--port", str(port), "--data-dir", str(tmp_path / "zk")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as reply:
            assert reply.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    assert b"unknown coordinator config key" not in proc.stderr.read()
