"""The closed control plane: a coordinator serving only mutual TLS
(`secureClientPort`, `ssl.clientAuth=need`), a broker reaching it with
Kafka's `zookeeper.ssl.*` keys, the tools with `--zk-tls-config-file`, and
each attack of issue 11 on the coordinator port replayed and refused.
Certificates come from `gregor security init` in a temporary directory:
`CN=broker` is the coordinator's super user, `CN=client` (trusted, but not
authorized) plays the outsider with a certificate."""
import http.client
import json
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from conftest import BIN, Broker, GregorProcess, free_port
from test_tls import security_init

TOPIC = "guarded"
BROKER = "User:CN=broker,O=gregor"


class SecureCoordinator(GregorProcess):
    """`gregor coordinator` with security init's coordinator.properties on a
    free secure port (and no plaintext port)."""

    def __init__(self, data_dir, certs, super_users=BROKER, extra=()):
        self.data_dir = Path(data_dir)
        self.certs = certs
        self.port = free_port()
        self.super_users = super_users
        self.extra = [a for o in extra for a in ("--override", o)]
        self.log_path = self.data_dir.parent / f"coordinator-{self.port}.log"

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def args(self):
        return [
            str(BIN), "coordinator", str(self.certs / "coordinator.properties"),
            "--data-dir", str(self.data_dir),
            "--override", f"secureClientPort={self.port}",
            "--override", f"super.users={self.super_users}",
            *self.extra,
        ]


def context(certs, keystore="client-keystore.pem", ca=None):
    """A client TLS context trusting `ca` (default: certs/ca.pem),
    presenting `keystore` (None: no certificate)."""
    ctx = ssl.create_default_context(cafile=str(ca or certs / "ca.pem"))
    if keystore:
        ctx.load_cert_chain(str(Path(certs) / keystore))
    return ctx


def call(coordinator, ctx, method, path, body=None):
    """One HTTPS request; (status, decoded JSON body)."""
    connection = http.client.HTTPSConnection("127.0.0.1", coordinator.port, context=ctx, timeout=10)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"content-type": "application/json"} if payload else {}
        connection.request(method, path, body=payload, headers=headers)
        reply = connection.getresponse()
        data = reply.read()
        return reply.status, (json.loads(data) if data else None)
    finally:
        connection.close()


@pytest.fixture
def certs(tmp_path):
    return security_init(tmp_path / "certs")


@pytest.fixture
def secured(tmp_path, certs):
    """A coordinator on mutual TLS and a broker registered through it, with a
    topic created by the tools through --zookeeper/--zk-tls-config-file."""
    started = []
    coordinator = SecureCoordinator(tmp_path / "coordinator", certs)
    started.append(coordinator)
    coordinator.start()
    overrides = [
        f"zookeeper.connect={coordinator.address}",
        "zookeeper.ssl.client.enable=true",
        "zookeeper.ssl.keystore.type=PEM",
        f"zookeeper.ssl.keystore.location={certs}/broker-keystore.pem",
        "zookeeper.ssl.truststore.type=PEM",
        f"zookeeper.ssl.truststore.location={certs}/ca.pem",
    ]
    broker = Broker(tmp_path / "broker", extra=[a for o in overrides for a in ("--override", o)])
    started.append(broker)
    broker.start()
    yield coordinator, broker
    for process in started:
        try:
            process.kill9()
        except Exception:
            pass


def kafka_tool(certs, name):
    """The binary under a Kafka script name, as users call it."""
    link = certs.parent / name
    if not link.exists():
        link.symlink_to(BIN)
    return str(link)


def topics_tool(coordinator, certs, *args):
    return subprocess.run(
        [kafka_tool(certs, "kafka-topics.sh"), "--zookeeper", coordinator.address,
         "--zk-tls-config-file", str(certs / "zk-tls-client.properties"), *args],
        capture_output=True, timeout=60,
    )


def create_guarded_topic(coordinator, certs):
    result = topics_tool(coordinator, certs, "--create", "--topic", TOPIC,
                         "--partitions", "1", "--replication-factor", "1")
    assert result.returncode == 0, result.stderr.decode()


def cluster_view(coordinator, certs):
    status, view = call(coordinator, context(certs), "GET", "/v1/cluster")
    assert status == 200, view
    return view


def test_broker_and_tools_work_end_to_end_over_mutual_tls(secured, certs):
    coordinator, broker = secured
    create_guarded_topic(coordinator, certs)
    listed = topics_tool(coordinator, certs, "--list")
    assert listed.returncode == 0, listed.stderr.decode()
    assert TOPIC in listed.stdout.decode().split()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(3):
        producer.send(TOPIC, f"v{i}".encode())
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(TOPIC, bootstrap_servers=broker.bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=8000)
    values = [m.value for _, m in zip(range(3), consumer)]
    consumer.close()
    assert values == [b"v0", b"v1", b"v2"]


def test_the_tools_without_the_tls_file_get_no_answer(secured, certs):
    coordinator, _ = secured
    result = subprocess.run(
        [kafka_tool(certs, "kafka-topics.sh"), "--zookeeper", coordinator.address, "--list"],
        capture_output=True, timeout=60,
    )
    assert result.returncode != 0
    assert coordinator.address in result.stderr.decode()


def test_plain_http_to_the_tls_port_is_refused(secured):
    coordinator, broker = secured
    with socket.create_connection(("127.0.0.1", coordinator.port), timeout=5) as s:
        s.sendall(b"DELETE /v1/topics/x HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n")
        try:
            reply = s.recv(4096)
        except ConnectionResetError:
            reply = b""
    assert not reply.startswith(b"HTTP/"), reply
    assert "coordinator TLS connection refused" in coordinator.output()


def test_tls_without_a_client_certificate_is_refused(secured, certs):
    coordinator, _ = secured
    with pytest.raises((ssl.SSLError, ConnectionError)):
        call(coordinator, context(certs, keystore=None), "GET", "/v1/cluster")


def test_a_certificate_from_another_ca_is_refused(secured, certs, tmp_path):
    coordinator, _ = secured
    other = security_init(tmp_path / "other")
    # The outsider trusts our CA (it may have our ca.pem) but holds a
    # certificate its own CA signed, with the broker's very subject.
    ctx = context(other, keystore="broker-keystore.pem", ca=certs / "ca.pem")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        call(coordinator, ctx, "DELETE", f"/v1/topics/{TOPIC}")


def refused(reply, code):
    status, body = reply
    assert status == 403, reply
    assert body["error_code"] == code, body
    assert "CN=client,O=gregor" in body["error_message"], body


def test_an_unauthorized_principal_cannot_create_a_topic(secured, certs):
    coordinator, _ = secured
    body = {"name": "intruder", "num_partitions": 1, "replication_factor": 1}
    refused(call(coordinator, context(certs), "POST", "/v1/topics", body), 29)
    assert not any(t["name"] == "intruder" for t in cluster_view(coordinator, certs).get("topics", []))
    listed = topics_tool(coordinator, certs, "--list")
    assert "intruder" not in listed.stdout.decode().split()


def test_an_unauthorized_principal_cannot_delete_a_topic(secured, certs):
    coordinator, _ = secured
    create_guarded_topic(coordinator, certs)
    refused(call(coordinator, context(certs), "DELETE", f"/v1/topics/{TOPIC}"), 29)
    listed = topics_tool(coordinator, certs, "--list")
    assert TOPIC in listed.stdout.decode().split()


def test_an_unauthorized_principal_cannot_alter_a_topic_config(secured, certs):
    coordinator, broker = secured
    create_guarded_topic(coordinator, certs)
    body = {"set": {"retention.ms": "1"}, "delete": []}
    refused(call(coordinator, context(certs), "PUT", f"/v1/configs/topic/{TOPIC}", body), 29)
    described = subprocess.run(
        [kafka_tool(certs, "kafka-configs.sh"), "--bootstrap-server", broker.bootstrap, "--describe",
         "--entity-type", "topics", "--entity-name", TOPIC],
        capture_output=True, timeout=60,
    )
    assert described.returncode == 0, described.stderr.decode()
    assert "retention.ms=1" not in described.stdout.decode()


def test_an_unauthorized_principal_cannot_register_broker_0_elsewhere(secured, certs):
    coordinator, broker = secured
    before = next(b for b in cluster_view(coordinator, certs)["brokers"] if b["id"] == 0)
    listeners = [dict(listener, host="10.6.6.6") for listener in before["listeners"]]
    body = {
        "broker_id": 0,
        "incarnation_id": str(uuid.uuid4()),
        "listeners": listeners,
        "directory_id": str(uuid.uuid4()),
    }
    refused(call(coordinator, context(certs), "POST", "/v1/brokers/register", body), 31)
    after = next(b for b in cluster_view(coordinator, certs)["brokers"] if b["id"] == 0)
    assert after["epoch"] == before["epoch"] and not after["fenced"]
    assert all(listener["host"] != "10.6.6.6" for listener in after["listeners"])


def test_an_unauthorized_principal_cannot_allocate_producer_ids(secured, certs):
    coordinator, broker = secured
    body = {"broker_id": 0, "count": 1000}
    refused(call(coordinator, context(certs), "POST", "/v1/producer-ids", body), 31)
    # Idempotent producers still get ids.
    create_guarded_topic(coordinator, certs)
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True)
    producer.send(TOPIC, b"still idempotent").get(timeout=15)
    producer.close()


def test_an_unauthorized_principal_cannot_read_the_metadata_log(secured, certs):
    coordinator, _ = secured
    refused(call(coordinator, context(certs), "GET", "/v1/metadata/log?from=0"), 31)


def test_the_cluster_view_lists_only_topics_the_peer_may_describe(secured, certs):
    coordinator, _ = secured
    create_guarded_topic(coordinator, certs)
    client_view = cluster_view(coordinator, certs)
    assert client_view["brokers"], "brokers are for everyone (bootstrap)"
    assert client_view["topics"] == []
    broker = context(certs, keystore="broker-keystore.pem")
    status, broker_view = call(coordinator, broker, "GET", "/v1/cluster")
    assert status == 200
    assert [t["name"] for t in broker_view["topics"]] == [TOPIC]


def test_an_unauthorized_principal_cannot_create_a_scram_user(secured, certs):
    coordinator, _ = secured
    body = {
        "user": "intruder",
        "mechanism": "SCRAM-SHA-256",
        "credential": {"salt": [1] * 16, "stored_key": [2] * 32, "server_key": [3] * 32,
                       "iterations": 4096},
    }
    refused(call(coordinator, context(certs), "POST", "/v1/scram-credentials", body), 31)
    # The same request from the broker (a super user) is what the coordinator serves.
    broker = context(certs, keystore="broker-keystore.pem")
    status, reply = call(coordinator, broker, "POST", "/v1/scram-credentials", body)
    assert status == 200, reply


def test_another_authorized_principal_cannot_take_a_live_brokers_id(tmp_path, certs):
    """The coordinator certificate (CN=coordinator) is made a super user too:
    it holds ClusterAction, yet broker id 0 belongs to CN=broker."""
    coordinator = SecureCoordinator(
        tmp_path / "coordinator", certs,
        super_users=f"{BROKER};User:CN=coordinator,O=gregor",
    ).start()
    overrides = [
        f"zookeeper.connect={coordinator.address}",
        "zookeeper.ssl.client.enable=true",
        f"zookeeper.ssl.keystore.location={certs}/broker-keystore.pem",
        f"zookeeper.ssl.truststore.location={certs}/ca.pem",
    ]
    broker = Broker(tmp_path / "broker", extra=[a for o in overrides for a in ("--override", o)])
    try:
        broker.start()
        other = context(certs, keystore="coordinator-keystore.pem")
        status, view = call(coordinator, other, "GET", "/v1/cluster")
        before = next(b for b in view["brokers"] if b["id"] == 0)
        body = {
            "broker_id": 0,
            "incarnation_id": str(uuid.uuid4()),
            "listeners": before["listeners"],
            "directory_id": str(uuid.uuid4()),
        }
        status, reply = call(coordinator, other, "POST", "/v1/brokers/register", body)
        assert status != 200 and reply["error_code"] == 101, reply
        assert "User:CN=broker,O=gregor" in reply["error_message"], reply
        _, view = call(coordinator, other, "GET", "/v1/cluster")
        after = next(b for b in view["brokers"] if b["id"] == 0)
        assert after["epoch"] == before["epoch"]
    finally:
        broker.kill9()
        coordinator.kill9()


def test_an_unauthorized_principal_cannot_fence_broker_0_by_heartbeat(secured, certs):
    coordinator, broker = secured
    before = next(b for b in cluster_view(coordinator, certs)["brokers"] if b["id"] == 0)
    body = {
        "broker_id": 0,
        "broker_epoch": before["epoch"],
        "current_metadata_offset": 0,
        "want_fence": True,
        "want_shut_down": True,
    }
    refused(call(coordinator, context(certs), "POST", "/v1/brokers/heartbeat", body), 31)
    after = next(b for b in cluster_view(coordinator, certs)["brokers"] if b["id"] == 0)
    assert not after["fenced"]


def test_a_broker_whose_certificate_is_not_authorized_stops_with_one_line(tmp_path, certs):
    coordinator = SecureCoordinator(tmp_path / "coordinator", certs).start()
    try:
        result = subprocess.run(
            [str(BIN), "broker", "--data-dir", str(tmp_path / "broker"),
             "--listeners", f"PLAINTEXT://127.0.0.1:{free_port()}",
             "--admin", f"127.0.0.1:{free_port()}",
             "--override", f"zookeeper.connect={coordinator.address}",
             "--override", "zookeeper.ssl.client.enable=true",
             "--override", f"zookeeper.ssl.keystore.location={certs}/client-keystore.pem",
             "--override", f"zookeeper.ssl.truststore.location={certs}/ca.pem"],
            capture_output=True, timeout=60,
        )
        assert result.returncode != 0
        last = result.stderr.decode().strip().splitlines()[-1]
        assert "CLUSTER_AUTHORIZATION_FAILED" in last and "CN=client,O=gregor" in last, last
    finally:
        coordinator.kill9()


def test_an_open_coordinator_port_warns_at_start(tmp_path):
    port = free_port()
    coordinator = subprocess.Popen(
        [str(BIN), "coordinator", "--port", str(port), "--data-dir", str(tmp_path / "c"),
         "--override", "clientPortAddress=0.0.0.0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        for line in coordinator.stdout:
            if b"accepts unauthenticated connections" in line:
                assert str(port).encode() in line
                break
            if b"coordinator started" in line:
                pytest.fail("no warning before the start line")
    finally:
        coordinator.kill()
        coordinator.wait()


def test_with_an_authorizer_the_coordinator_follows_the_acls(tmp_path, certs):
    """authorizer.class.name on the coordinator: the ACLs in the metadata log
    decide, as on the broker. CN=client may create topics prefixed app-."""
    coordinator = SecureCoordinator(
        tmp_path / "coordinator", certs,
        extra=["authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"],
    ).start()
    try:
        grant = {"bindings": [{
            "pattern": {"resource_type": "TOPIC", "name": "app-", "pattern_type": "PREFIXED"},
            "entry": {"principal": "User:CN=client,O=gregor", "host": "*",
                      "operation": "CREATE", "permission": "ALLOW"},
        }]}
        client = context(certs)
        # Only Alter on the cluster may add ACLs: the client may not grant itself.
        refused(call(coordinator, client, "POST", "/v1/acls", grant), 31)
        broker = context(certs, keystore="broker-keystore.pem")
        status, reply = call(coordinator, broker, "POST", "/v1/acls", grant)
        assert status == 200, reply
        topic = {"num_partitions": 1, "replication_factor": 1}
        status, reply = call(coordinator, client, "POST", "/v1/topics", dict(topic, name="app-orders"))
        # Authorized: it gets as far as placing replicas (no broker here).
        assert status != 403 and reply["error_name"] == "INVALID_REPLICATION_FACTOR", reply
        refused(call(coordinator, client, "POST", "/v1/topics", dict(topic, name="payments")), 29)
        refused(call(coordinator, client, "DELETE", "/v1/topics/app-orders"), 29)
    finally:
        coordinator.kill9()


def test_the_plaintext_port_beside_the_tls_one_only_reads(tmp_path, certs):
    """clientPort and secureClientPort both open, ssl.clientAuth=want: peers
    without a certificate (on either port) are User:ANONYMOUS and may read
    the cluster view, not write."""
    plain = free_port()
    coordinator = SecureCoordinator(
        tmp_path / "coordinator", certs,
        extra=[f"clientPort={plain}", "ssl.clientAuth=want"],
    ).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{plain}/v1/cluster", timeout=5) as reply:
            assert reply.status == 200
        request = urllib.request.Request(
            f"http://127.0.0.1:{plain}/v1/topics", method="POST",
            data=json.dumps({"name": "t", "num_partitions": 1, "replication_factor": 1}).encode(),
        )
        with pytest.raises(urllib.error.HTTPError) as refusal:
            urllib.request.urlopen(request, timeout=5)
        assert refusal.value.code == 403
        body = json.loads(refusal.value.read())
        assert body["error_code"] == 29 and "User:ANONYMOUS" in body["error_message"], body
        anonymous = context(certs, keystore=None)
        status, _ = call(coordinator, anonymous, "GET", "/v1/cluster")
        assert status == 200
        status, body = call(coordinator, anonymous, "DELETE", "/v1/topics/t")
        assert status == 403 and "User:ANONYMOUS" in body["error_message"], body
    finally:
        coordinator.kill9()


def test_the_coordinator_certificate_must_name_the_host_unless_told_otherwise(tmp_path):
    """zookeeper.ssl.endpoint.identification.algorithm: HTTPS (the default)
    checks the coordinator's certificate names the host dialled; empty skips
    only that check."""
    certs = tmp_path / "named"
    made = subprocess.run(
        [str(BIN), "security", "init", str(certs), "--hosts", "coordinator.example"],
        capture_output=True, timeout=60,
    )
    assert made.returncode == 0, made.stderr.decode()
    coordinator = SecureCoordinator(tmp_path / "coordinator", certs).start()
    try:
        checked = topics_tool(coordinator, certs, "--list")
        assert checked.returncode != 0
        assert "TLS handshake failed" in checked.stderr.decode(), checked.stderr.decode()
        unchecked = certs / "zk-no-hostname.properties"
        unchecked.write_text(
            (certs / "zk-tls-client.properties").read_text()
            + "zookeeper.ssl.endpoint.identification.algorithm=\n"
        )
        result = subprocess.run(
            [kafka_tool(certs, "kafka-topics.sh"), "--zookeeper", coordinator.address,
             "--zk-tls-config-file", str(unchecked), "--list"],
            capture_output=True, timeout=60,
        )
        # Past TLS: the coordinator answered, and knows no broker yet.
        assert "knows no live brokers" in result.stderr.decode(), result.stderr.decode()
    finally:
        coordinator.kill9()
