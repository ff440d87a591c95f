"""KRaft's shape with the CONTROLLER listener on mutual TLS
(`listener.security.protocol.map=…,CONTROLLER:SSL`): three combined nodes on
loopback with the lines of `gregor security init`'s
kraft-controller.properties (one node through the official image's KAFKA_*
variables), raft and the brokers' calls over TLS, clients on the brokers'
PLAINTEXT listener; the controller port refusing plaintext and foreign
certificates; `kafka-metadata-quorum.sh --command-config` with
security.protocol=SSL; the warnings and refusals at start."""
import http.client
import json
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import free_port
from test_brokers import CLIENTS, TOPIC_PARTITIONS, all_led, create_topic, values_for, wait_for_leaders
from test_coordinator import consume, produce, wait_until
from test_kraft import FAILOVER_SECONDS, Node, create_topic_once, metadata_quorum
from test_tls import security_init

BROKER = "User:CN=broker,O=gregor"


def kraft_lines(certs):
    """security init's kraft-controller.properties as a dict."""
    lines = (certs / "kraft-controller.properties").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def context(certs, keystore="client-keystore.pem", ca=None):
    ctx = ssl.create_default_context(cafile=str(ca or Path(certs) / "ca.pem"))
    if keystore:
        ctx.load_cert_chain(str(Path(certs) / keystore))
    return ctx


def call(port, ctx, method, path, body=None):
    """One HTTPS request to a controller port: (status, decoded JSON)."""
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"content-type": "application/json"} if payload else {}
        connection.request(method, path, body=payload, headers=headers)
        reply = connection.getresponse()
        data = reply.read()
        return reply.status, (json.loads(data) if data.startswith(b"{") else data)
    finally:
        connection.close()


class SecureNode(Node):
    """A KRaft node whose controller listener is SSL, with `certs`' lines;
    its quorum view read over TLS (the client's certificate)."""

    def __init__(self, tmp_path, certs, *args, extra=None, **kwargs):
        super().__init__(tmp_path, *args, **kwargs)
        self.certs = certs
        self.settings.update(kraft_lines(certs))
        self.settings.update(extra or {})
        if self.use_env:
            for key, value in self.settings.items():
                self.env["KAFKA_" + key.upper().replace(".", "_")] = value
        self.config.write_text("".join(f"{k}={v}\n" for k, v in self.settings.items()))

    def quorum(self):
        status, view = call(self.controller_port, context(self.certs), "GET", "/v1/quorum")
        assert status == 200, view
        return view

    def image(self):
        status, log = call(self.controller_port, context(self.certs, "broker-keystore.pem"),
                           "GET", "/v1/metadata/log?from=0")
        assert status == 200, log
        return log["snapshot"]


@pytest.fixture
def certs(tmp_path):
    return security_init(tmp_path / "certs")


@pytest.fixture
def launched(tmp_path):
    started = []
    yield started
    for node in started:
        try:
            node.kill9()
        except Exception:
            pass


def secure_cluster(tmp_path, certs, started, count=3):
    ports = {n: free_port() for n in range(1, count + 1)}
    voters = ",".join(f"{n}@127.0.0.1:{p}" for n, p in ports.items())
    # Node 1 as the official image takes it; the others from properties.
    made = [SecureNode(tmp_path, certs, n, "broker,controller", ports[n], voters=voters,
                       use_env=(n == 1)) for n in ports]
    started.extend(made)
    for node in made:
        node.launch()
    for node in made:
        node.ready()
    return made


def leader_of(nodes):
    live = [n for n in nodes if n.proc is not None]
    ids = {n.quorum()["leader_id"] for n in live}
    if len(ids) != 1 or None in ids:
        return None
    leader_id = ids.pop()
    return next((n for n in live if n.node_id == leader_id), None)


def test_three_combined_nodes_over_an_ssl_controller_listener_serve_and_fail_over(tmp_path, certs, launched):
    cluster = secure_cluster(tmp_path, certs, launched)
    bootstrap = cluster[1].bootstrap
    create_topic(bootstrap, "spread")
    found = wait_for_leaders(bootstrap, "spread", all_led)
    assert set(found.values()) == {1, 2, 3}, found
    for name in ("confluent-kafka", "kafka-python-auto"):
        topic = f"t-{name}"
        create_topic(bootstrap, topic)
        wait_for_leaders(bootstrap, topic, all_led)
        got = CLIENTS[name](bootstrap, topic)
        assert {p: got.get(p) for p in range(TOPIC_PARTITIONS)} == \
            {p: values_for(p) for p in range(TOPIC_PARTITIONS)}, name
    for node in cluster:
        output = node.output()
        assert "protocol=SSL" in output and "controller listening" in output
        # On loopback with client certificates required: nothing to warn about.
        assert "accepts unauthenticated connections" not in output
    old = wait_until(lambda: leader_of(cluster))
    assert [v["id"] for v in old.quorum()["voters"]] == [1, 2, 3]

    # kill -9 of the quorum leader: the survivors elect over TLS and commit.
    survivors = [n for n in cluster if n is not old]
    old.kill9()
    killed_at = time.time()
    new = wait_until(lambda: leader_of(survivors), timeout=FAILOVER_SECONDS)
    assert new is not old and new.quorum()["leader_epoch"] > 0
    created = wait_until(lambda: create_topic_once(survivors[0].bootstrap, "after", 2),
                         timeout=FAILOVER_SECONDS + 10)
    assert created and time.time() - killed_at < FAILOVER_SECONDS + 10
    # The killed node restarts and catches up over TLS (a partition placed
    # on it while it was still registered comes back with it).
    old.start()
    wait_until(lambda: "after" in old.image()["topics"], timeout=30)
    wait_for_leaders(old.bootstrap, "after", lambda found: len(found) == 2 and min(found.values()) >= 0)
    produce(old.bootstrap, "after", [b"back"])
    assert b"back" in consume(old.bootstrap, "after", 1)


def test_the_controller_port_takes_only_trusted_certificates(tmp_path, certs, launched):
    other = security_init(tmp_path / "other")
    port = free_port()
    node = SecureNode(tmp_path, certs, 1, "broker,controller", port, voters=f"1@127.0.0.1:{port}")
    launched.append(node)
    node.start()
    wait_until(lambda: node.quorum()["leader_id"] == 1)
    # Plain HTTP is not answered.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /v1/quorum HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        try:
            answer = s.recv(1024)
        except (ConnectionResetError, socket.timeout):
            answer = b""
    assert b"HTTP/1.1 200" not in answer and b"leader_id" not in answer
    # TLS without a certificate, or with one from another CA: no handshake.
    for ctx in (context(certs, keystore=None), context(other, ca=certs / "ca.pem")):
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError,
                            http.client.RemoteDisconnected)):
            call(port, ctx, "GET", "/v1/quorum")
    # A client that does not trust ca.pem refuses the controller.
    with pytest.raises(ssl.SSLCertVerificationError):
        call(port, context(other, keystore=None), "GET", "/healthz")
    # A trusted certificate that is not a super user reads, but cannot write,
    # vote or read the metadata log.
    client = context(certs)
    assert call(port, client, "GET", "/healthz")[0] == 200
    status, body = call(port, client, "POST", "/v1/topics",
                        {"name": "nope", "num_partitions": 1, "replication_factor": 1,
                         "assignments": []})
    assert status == 403 and body["error_code"] == 29, body
    assert call(port, client, "GET", "/v1/metadata/log?from=0")[0] == 403
    status, body = call(port, client, "POST", "/v1/raft/vote", {})
    assert status == 403 and body["error_code"] == 31, body
    # The broker on the same node registered through it, and so does a
    # broker-only node finding the quorum by controller.quorum.bootstrap.servers.
    create_topic(node.bootstrap, "inside", partitions=1)
    produce(node.bootstrap, "inside", [b"x"])
    assert consume(node.bootstrap, "inside", 1) == [b"x"]
    broker = SecureNode(tmp_path, certs, 2, "broker", bootstrap_servers=node.controller)
    launched.append(broker)
    broker.start()
    create_topic(broker.bootstrap, "outside", partitions=2)
    wait_for_leaders(broker.bootstrap, "outside", lambda found: sorted(found.values()) == [1, 2])
    produce(broker.bootstrap, "outside", [b"y"])
    assert consume(node.bootstrap, "outside", 1) == [b"y"]

    # kafka-metadata-quorum.sh: security.protocol=SSL in --command-config.
    ok = metadata_quorum(tmp_path, "--bootstrap-controller", node.controller,
                         "--command-config", str(certs / "client-ssl.properties"),
                         "describe", "--status")
    assert ok.returncode == 0, ok.stderr.decode()
    rows = dict(line.split(":", 1) for line in ok.stdout.decode().splitlines())
    assert rows["LeaderId"].strip() == "1" and rows["CurrentVoters"].strip() == "[1]"
    plain = metadata_quorum(tmp_path, "--bootstrap-controller", node.controller,
                            "describe", "--status")
    assert plain.returncode != 0
    foreign = metadata_quorum(tmp_path, "--bootstrap-controller", node.controller,
                              "--command-config", str(other / "client-ssl.properties"),
                              "describe", "--status")
    assert foreign.returncode != 0
    # Changing the voters needs a super user's certificate.
    admin = tmp_path / "admin-ssl.properties"
    admin.write_text((certs / "client-ssl.properties").read_text()
                     .replace("client-keystore.pem", "broker-keystore.pem"))
    refused = metadata_quorum(tmp_path, "--bootstrap-controller", node.controller,
                              "--command-config", str(certs / "client-ssl.properties"),
                              "remove-controller", "--controller-id", "7")
    assert refused.returncode != 0 and b"CLUSTER_AUTHORIZATION_FAILED" in refused.stderr, refused.stderr
    allowed = metadata_quorum(tmp_path, "--bootstrap-controller", node.controller,
                              "--command-config", str(admin),
                              "remove-controller", "--controller-id", "7")
    assert allowed.returncode != 0 and b"VOTER_NOT_FOUND" in allowed.stderr, allowed.stderr


def test_a_plaintext_controller_on_a_public_address_is_warned_about(tmp_path, launched):
    port = free_port()
    node = Node(tmp_path, 1, "broker,controller", port, voters=f"1@127.0.0.1:{port}")
    node.settings["listeners"] = node.settings["listeners"].replace(
        f"CONTROLLER://127.0.0.1:{port}", f"CONTROLLER://0.0.0.0:{port}")
    node.config.write_text("".join(f"{k}={v}\n" for k, v in node.settings.items()))
    launched.append(node)
    node.start()
    wait_until(lambda: "coordinator started" in node.output())
    warnings = [line for line in node.output().splitlines()
                if "accepts unauthenticated connections" in line]
    assert len(warnings) == 1 and str(port) in warnings[0], warnings


@pytest.mark.parametrize("protocol", ["SASL_SSL", "SASL_PLAINTEXT"])
def test_sasl_on_the_controller_listener_is_refused_at_start(tmp_path, certs, protocol):
    port = free_port()
    node = SecureNode(tmp_path, certs, 1, "broker,controller", port, voters=f"1@127.0.0.1:{port}",
                      extra={"listener.security.protocol.map":
                             f"PLAINTEXT:PLAINTEXT,CONTROLLER:{protocol}"})
    done = subprocess.run(node.args(), capture_output=True, timeout=30)
    assert done.returncode == 2, done.stderr
    assert f"the controller listener CONTROLLER is {protocol}".encode() in done.stderr, done.stderr
    assert done.stderr.count(b"\n") == 1, done.stderr
