"""SASL on a SASL_PLAINTEXT listener: PLAIN (users from the JAAS line) and
SCRAM-SHA-256/512 (users in the metadata log), with kafka-python,
confluent-kafka, aiokafka and kcat, also on a SASL_SSL listener (TLS with
certificates from `gregor security init`, then SASL); failures, the pre-authentication gate,
user management (kafka-configs.sh, admin clients) and re-authentication
(KIP-368)."""
import asyncio
import logging
import re
import socket
import struct
import subprocess
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from aiokafka.helpers import create_ssl_context
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ScramCredentialInfo
from confluent_kafka.admin import ScramMechanism as CkScramMechanism
from confluent_kafka.admin import UserScramCredentialDeletion as CkDeletion
from confluent_kafka.admin import UserScramCredentialUpsertion as CkUpsertion
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, UserScramCredentialDeletion, UserScramCredentialUpsertion

from conftest import BIN, Broker, free_port, read_response, recv_exactly, request

MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
        'username="admin" password="admin-secret" '
        'user_admin="admin-secret" user_alice="alice-secret";')

SASL_HANDSHAKE, SASL_AUTHENTICATE, METADATA, API_VERSIONS = 17, 36, 3, 18


def start_sasl_broker(tmp_path, extra_props="", env=None, tls=False):
    """A broker with a SASL_PLAINTEXT listener (its `port`; SASL_SSL with
    `tls`) and a PLAINTEXT one (`plain_port`) for the CLI, PLAIN users admin
    and alice from the JAAS line and the same users as SCRAM users from
    KAFKA_CLIENT_USERS."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    protocol = "SASL_SSL" if tls else "SASL_PLAINTEXT"
    lines = [f"listener.name.{protocol.lower()}.plain.sasl.jaas.config={JAAS}", extra_props]
    cafile = None
    if tls:
        certs = tmp_path / "certs"
        subprocess.run([str(BIN), "security", "init", str(certs), "--hosts", "localhost,127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
        lines.append(f"ssl.keystore.location={certs}/broker-keystore.pem")
        cafile = str(certs / "ca.pem")
    props = tmp_path / "server.properties"
    props.write_text("\n".join(lines) + "\n")
    port, plain_port = free_port(), free_port()
    broker = Broker(
        tmp_path / "data", [str(props)],
        env={"KAFKA_CLIENT_USERS": "admin,alice",
             "KAFKA_CLIENT_PASSWORDS": "admin-secret,alice-secret", **(env or {})},
        listeners=f"{protocol}://127.0.0.1:{port},PLAINTEXT://127.0.0.1:{plain_port}",
        port=port)
    broker.plain_port = plain_port
    broker.security_protocol = protocol
    broker.cafile = cafile
    return broker.start()


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory):
    broker = start_sasl_broker(tmp_path_factory.mktemp("sasl"))
    yield broker
    broker.kill9()


@pytest.fixture(scope="module")
def sasl_ssl_broker(tmp_path_factory):
    broker = start_sasl_broker(tmp_path_factory.mktemp("sasl-ssl"), tls=True)
    yield broker
    broker.kill9()


@pytest.fixture
def own_broker(tmp_path):
    started = []

    def make(extra_props="", env=None):
        broker = start_sasl_broker(tmp_path / f"b{len(started)}", extra_props, env)
        started.append(broker)
        return broker

    yield make
    for broker in started:
        broker.kill9()


def topic_name():
    return f"sasl-{uuid.uuid4().hex[:8]}"


def ck_config(broker, mechanism, user="alice", password="alice-secret"):
    config = {"bootstrap.servers": broker.bootstrap, "security.protocol": broker.security_protocol,
              "sasl.mechanisms": mechanism, "sasl.username": user, "sasl.password": password}
    if broker.cafile:
        config["ssl.ca.location"] = broker.cafile
    return config


def kp_config(broker, mechanism, user="alice", password="alice-secret"):
    config = dict(bootstrap_servers=broker.bootstrap, security_protocol=broker.security_protocol,
                  sasl_mechanism=mechanism, sasl_plain_username=user,
                  sasl_plain_password=password)
    if broker.cafile:
        config["ssl_cafile"] = broker.cafile
    return config


def aio_config(broker, mechanism, user="alice", password="alice-secret"):
    config = kp_config(broker, mechanism, user, password)
    if config.pop("ssl_cafile", None):
        config["ssl_context"] = create_ssl_context(cafile=broker.cafile)
    return config


# --- produce and consume with every client and mechanism ---

def kafka_python_round_trip(broker, mechanism, topic):
    producer = KafkaProducer(**kp_config(broker, mechanism))
    producer.send(topic, b"from kafka-python").get(timeout=20)
    producer.close()
    consumer = KafkaConsumer(topic, auto_offset_reset="earliest", consumer_timeout_ms=15000,
                             **kp_config(broker, mechanism))
    values = [m.value for m in consumer]
    consumer.close()
    return values


def confluent_round_trip(broker, mechanism, topic):
    producer = Producer(ck_config(broker, mechanism))
    producer.produce(topic, b"from confluent-kafka")
    assert producer.flush(20) == 0
    consumer = Consumer({**ck_config(broker, mechanism), "group.id": topic,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    values, deadline = [], time.time() + 20
    while not values and time.time() < deadline:
        message = consumer.poll(1)
        if message is not None and message.error() is None:
            values.append(message.value())
    consumer.close()
    return values


def aiokafka_round_trip(broker, mechanism, topic):
    async def run():
        producer = AIOKafkaProducer(**aio_config(broker, mechanism))
        await producer.start()
        await producer.send_and_wait(topic, b"from aiokafka")
        await producer.stop()
        consumer = AIOKafkaConsumer(topic, auto_offset_reset="earliest",
                                    **aio_config(broker, mechanism))
        await consumer.start()
        try:
            message = await asyncio.wait_for(consumer.getone(), 20)
        finally:
            await consumer.stop()
        return [message.value]
    return asyncio.run(run())


def kcat_args(broker, mechanism, user="alice", password="alice-secret"):
    args = ["kcat", "-b", broker.bootstrap, "-X", f"security.protocol={broker.security_protocol}",
            "-X", f"sasl.mechanisms={mechanism}", "-X", f"sasl.username={user}",
            "-X", f"sasl.password={password}"]
    if broker.cafile:
        args += ["-X", f"ssl.ca.location={broker.cafile}"]
    return args


def kcat_round_trip(broker, mechanism, topic):
    subprocess.run([*kcat_args(broker, mechanism), "-t", topic, "-P"], input=b"from kcat\n",
                   check=True, timeout=30)
    out = subprocess.run([*kcat_args(broker, mechanism), "-t", topic, "-C", "-e",
                          "-o", "beginning"], capture_output=True, check=True, timeout=30)
    return out.stdout.splitlines()


ROUND_TRIPS = {
    "kafka-python": (kafka_python_round_trip, b"from kafka-python"),
    "confluent-kafka": (confluent_round_trip, b"from confluent-kafka"),
    "aiokafka": (aiokafka_round_trip, b"from aiokafka"),
    "kcat": (kcat_round_trip, b"from kcat"),
}


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("client", list(ROUND_TRIPS))
def test_client_produces_and_consumes_over_sasl(sasl_broker, client, mechanism):
    round_trip, expected = ROUND_TRIPS[client]
    assert round_trip(sasl_broker, mechanism, topic_name()) == [expected]


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("client", list(ROUND_TRIPS))
def test_client_produces_and_consumes_over_sasl_ssl(sasl_ssl_broker, client, mechanism):
    round_trip, expected = ROUND_TRIPS[client]
    assert round_trip(sasl_ssl_broker, mechanism, topic_name()) == [expected]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_wrong_password_over_sasl_ssl_fails_cleanly(sasl_ssl_broker, mechanism):
    errors = ck_auth_error(sasl_ssl_broker, mechanism, "alice", "wrong")
    assert any("Authentication failed" in e for e in errors), errors
    # A plaintext SASL client on the TLS port gets no answer it can use.
    plain = subprocess.run(["kcat", "-b", sasl_ssl_broker.bootstrap, "-X",
                            "security.protocol=SASL_PLAINTEXT", "-X", f"sasl.mechanisms={mechanism}",
                            "-X", "sasl.username=alice", "-X", "sasl.password=alice-secret",
                            "-L", "-m", "3"], capture_output=True, timeout=30)
    assert plain.returncode != 0
    assert kafka_python_round_trip(sasl_ssl_broker, mechanism, topic_name()) == [b"from kafka-python"]


# --- failures ---

async def aiokafka_start(broker, mechanism, user, password):
    producer = AIOKafkaProducer(**aio_config(broker, mechanism, user, password))
    try:
        await producer.start()
    finally:
        await producer.stop()


def ck_auth_error(broker, mechanism, user, password):
    """The errors confluent-kafka reports through its error callback."""
    errors = []
    producer = Producer({**ck_config(broker, mechanism, user, password),
                         "error_cb": errors.append, "log_level": 0})
    deadline = time.time() + 10
    while not errors and time.time() < deadline:
        producer.poll(0.2)
    return [str(e) for e in errors]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_wrong_password_and_unknown_user_fail_cleanly(sasl_broker, mechanism, caplog):
    for user, password in [("alice", "wrong"), ("mallory", "alice-secret")]:
        errors = ck_auth_error(sasl_broker, mechanism, user, password)
        assert any("Authentication failed" in e for e in errors), errors
        out = subprocess.run([*kcat_args(sasl_broker, mechanism, user, password), "-L",
                              "-m", "5"], capture_output=True, timeout=30)
        assert out.returncode != 0
        assert b"Authentication failed" in out.stderr, out.stderr
    # aiokafka gives up bootstrapping and logs the broker's message.
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="aiokafka"):
        with pytest.raises(KafkaConnectionError):
            asyncio.run(aiokafka_start(sasl_broker, mechanism, "alice", "wrong"))
    assert "Authentication failed" in caplog.text, caplog.text
    # kafka-python gives up bootstrapping and logs the broker's message.
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="kafka"):
        with pytest.raises(Exception):
            KafkaProducer(**kp_config(sasl_broker, mechanism, "alice", "wrong"),
                          bootstrap_timeout_ms=10000)
    assert "Authentication failed" in caplog.text, caplog.text
    # The broker keeps serving a good client.
    assert kcat_round_trip(sasl_broker, mechanism, topic_name()) == [b"from kcat"]
    log = sasl_broker.output()
    assert "SASL authentication failed" in log
    assert "alice-secret" not in log and "wrong" not in log.replace("wrong password", "")


def handshake_body(mechanism):
    return struct.pack(">h", len(mechanism)) + mechanism.encode()


def authenticate_body(token):
    return struct.pack(">i", len(token)) + token


def parse_handshake(response):
    correlation_id, error_code, count = struct.unpack(">ihi", response[:10])
    rest, mechanisms = response[10:], []
    for _ in range(count):
        (size,) = struct.unpack(">h", rest[:2])
        mechanisms.append(rest[2:2 + size].decode())
        rest = rest[2 + size:]
    return error_code, mechanisms


def parse_authenticate(response):
    """A v1 SaslAuthenticate response: error, message, token, lifetime."""
    error_code, message_size = struct.unpack(">hh", response[4:8])
    message = response[8:8 + message_size].decode() if message_size >= 0 else None
    rest = response[8 + max(message_size, 0):]
    (token_size,) = struct.unpack(">i", rest[:4])
    token = rest[4:4 + token_size]
    (lifetime,) = struct.unpack(">q", rest[4 + token_size:12 + token_size])
    return error_code, message, token, lifetime


def closed(s, timeout=5):
    s.settimeout(timeout)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def connect(broker):
    return socket.create_connection(("127.0.0.1", broker.port), timeout=10)


def test_unsupported_mechanism_is_refused_with_the_enabled_list(sasl_broker):
    with connect(sasl_broker) as s:
        started = time.monotonic()
        s.sendall(request(SASL_HANDSHAKE, 1, 1, handshake_body("GSSAPI")))
        error_code, mechanisms = parse_handshake(read_response(s))
        assert time.monotonic() - started >= 0.1
        assert error_code == 33
        assert mechanisms == MECHANISMS
        assert closed(s)


def test_mechanism_not_enabled_on_the_listener_is_reported_by_clients(own_broker):
    broker = own_broker("listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN")
    errors = ck_auth_error(broker, "SCRAM-SHA-256", "alice", "alice-secret")
    assert any("SCRAM-SHA-256" in e and "PLAIN" in e for e in errors), errors
    out = subprocess.run([*kcat_args(broker, "SCRAM-SHA-512"), "-L", "-m", "5"],
                         capture_output=True, timeout=30)
    assert out.returncode != 0
    assert b"PLAIN" in out.stderr, out.stderr
    assert kcat_round_trip(broker, "PLAIN", topic_name()) == [b"from kcat"]


def test_failed_authentication_is_delayed_then_closed(sasl_broker):
    with connect(sasl_broker) as s:
        s.sendall(request(SASL_HANDSHAKE, 1, 1, handshake_body("PLAIN")))
        assert parse_handshake(read_response(s)) == (0, MECHANISMS)
        started = time.monotonic()
        s.sendall(request(SASL_AUTHENTICATE, 1, 2, authenticate_body(b"\0alice\0nope")))
        error_code, message, _, _ = parse_authenticate(read_response(s))
        assert time.monotonic() - started >= 0.1
        assert error_code == 58
        assert message == "Authentication failed: Invalid username or password"
        assert closed(s)


def test_client_that_skips_sasl_is_disconnected(sasl_broker):
    with connect(sasl_broker) as s:
        # ApiVersions is served before authentication ...
        s.sendall(request(API_VERSIONS, 0, 1))
        assert struct.unpack(">ih", read_response(s)[:6]) == (1, 0)
        # ... anything else closes the connection.
        s.sendall(request(METADATA, 1, 2, struct.pack(">i", -1)))
        assert closed(s)
    out = subprocess.run(["kcat", "-b", sasl_broker.bootstrap, "-L", "-m", "3"],
                         capture_output=True, timeout=30)
    assert out.returncode != 0


def test_v0_handshake_takes_raw_tokens(sasl_broker):
    with connect(sasl_broker) as s:
        s.sendall(request(SASL_HANDSHAKE, 0, 1, handshake_body("PLAIN")))
        assert parse_handshake(read_response(s)) == (0, MECHANISMS)
        token = b"\0alice\0alice-secret"
        s.sendall(struct.pack(">i", len(token)) + token)
        assert recv_exactly(s, 4) == struct.pack(">i", 0)
        s.sendall(request(METADATA, 1, 2, struct.pack(">i", -1)))
        assert struct.unpack(">i", read_response(s)[:4]) == (2,)


# --- user management ---

def configs(broker, *args):
    return subprocess.run([str(BIN), "configs", "--bootstrap-server",
                           f"127.0.0.1:{broker.plain_port}", *args],
                          capture_output=True, timeout=60)


def kcat_can_connect(broker, mechanism, user, password):
    out = subprocess.run([*kcat_args(broker, mechanism, user, password), "-L", "-m", "5"],
                         capture_output=True, timeout=30)
    return out.returncode == 0


def test_kafka_configs_creates_describes_and_deletes_scram_users(own_broker):
    broker = own_broker()
    out = configs(broker, "--entity-type", "users", "--entity-name", "bob", "--alter",
                  "--add-config",
                  "SCRAM-SHA-256=[iterations=8192,password=bob-secret],"
                  "SCRAM-SHA-512=[password=bob-secret]")
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().strip() == "Completed updating config for user bob."
    out = configs(broker, "--entity-type", "users", "--entity-name", "bob", "--describe")
    assert out.stdout.decode().strip() == (
        "SCRAM credential configs for user-principal 'bob' are "
        "SCRAM-SHA-256=iterations=8192, SCRAM-SHA-512=iterations=4096")
    assert kcat_can_connect(broker, "SCRAM-SHA-256", "bob", "bob-secret")
    assert kcat_can_connect(broker, "SCRAM-SHA-512", "bob", "bob-secret")
    assert not kcat_can_connect(broker, "SCRAM-SHA-512", "bob", "other")

    out = configs(broker, "--entity-type", "users", "--entity-name", "bob", "--alter",
                  "--delete-config", "SCRAM-SHA-512")
    assert out.returncode == 0, out.stderr
    assert not kcat_can_connect(broker, "SCRAM-SHA-512", "bob", "bob-secret")
    again = configs(broker, "--entity-type", "users", "--entity-name", "bob", "--alter",
                    "--delete-config", "SCRAM-SHA-512")
    assert again.returncode != 0
    assert b"Attempt to delete a user credential that does not exist" in again.stderr

    # Credentials are in the metadata log: they survive a restart.
    broker.restart()
    assert kcat_can_connect(broker, "SCRAM-SHA-256", "bob", "bob-secret")
    out = configs(broker, "--entity-type", "users", "--describe")
    listed = out.stdout.decode()
    assert "user-principal 'bob' are SCRAM-SHA-256=iterations=8192\n" in listed
    assert "user-principal 'alice' are SCRAM-SHA-256=iterations=4096, " \
           "SCRAM-SHA-512=iterations=4096" in listed


def test_kafka_python_admin_alters_and_describes_scram_users(own_broker):
    broker = own_broker()
    admin = KafkaAdminClient(**kp_config(broker, "SCRAM-SHA-512", "admin", "admin-secret"))
    result = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion("carol", "SCRAM-SHA-256", "carol-secret", iterations=5000),
    ])
    assert result == {"carol": None}
    described = admin.describe_user_scram_credentials(["carol", "nobody"])
    assert [(int(i["mechanism"]), i["iterations"])
            for i in described["carol"]["credential_infos"]] == [(1, 5000)]
    assert described["nobody"]["error"] == \
        "Attempt to describe a user credential that does not exist"
    assert kcat_can_connect(broker, "SCRAM-SHA-256", "carol", "carol-secret")
    bad = admin.alter_user_scram_credentials([
        UserScramCredentialUpsertion("carol", "SCRAM-SHA-512", "x", iterations=100),
    ])
    assert bad == {"carol": "Too few iterations"}
    assert admin.alter_user_scram_credentials(
        [UserScramCredentialDeletion("carol", "SCRAM-SHA-256")]) == {"carol": None}
    assert not kcat_can_connect(broker, "SCRAM-SHA-256", "carol", "carol-secret")
    admin.close()


def test_confluent_admin_alters_and_describes_scram_users(own_broker):
    broker = own_broker()
    admin = AdminClient(ck_config(broker, "SCRAM-SHA-256", "admin", "admin-secret"))
    info = ScramCredentialInfo(CkScramMechanism.SCRAM_SHA_512, 8192)
    futures = admin.alter_user_scram_credentials([CkUpsertion("dave", info, b"dave-secret")])
    futures["dave"].result(timeout=20)
    described = admin.describe_user_scram_credentials(["dave"])["dave"].result(timeout=20)
    infos = described.scram_credential_infos
    assert [(i.mechanism, i.iterations) for i in infos] == \
        [(CkScramMechanism.SCRAM_SHA_512, 8192)]
    assert kcat_can_connect(broker, "SCRAM-SHA-512", "dave", "dave-secret")
    futures = admin.alter_user_scram_credentials(
        [CkDeletion("dave", CkScramMechanism.SCRAM_SHA_512)])
    futures["dave"].result(timeout=20)
    assert not kcat_can_connect(broker, "SCRAM-SHA-512", "dave", "dave-secret")


# --- re-authentication (KIP-368) ---

def test_expired_session_without_reauthentication_is_closed(own_broker):
    broker = own_broker("connections.max.reauth.ms=1000")
    with connect(broker) as s:
        s.sendall(request(SASL_HANDSHAKE, 1, 1, handshake_body("PLAIN")))
        read_response(s)
        s.sendall(request(SASL_AUTHENTICATE, 1, 2, authenticate_body(b"\0alice\0alice-secret")))
        error_code, _, _, lifetime = parse_authenticate(read_response(s))
        assert (error_code, lifetime) == (0, 1000)
        s.sendall(request(METADATA, 1, 3, struct.pack(">i", -1)))
        assert struct.unpack(">i", read_response(s)[:4]) == (3,)
        time.sleep(1.2)
        s.sendall(request(METADATA, 1, 4, struct.pack(">i", -1)))
        assert closed(s)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256"])
def test_librdkafka_reauthenticates_and_a_long_consumer_keeps_working(own_broker, mechanism):
    broker = own_broker("connections.max.reauth.ms=1500",
                        env={"GREGOR_LOG": "info,gregor::broker::authentication=debug"})
    topic = topic_name()
    producer = Producer(ck_config(broker, mechanism))
    consumer = Consumer({**ck_config(broker, mechanism), "group.id": topic,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    received, sent = [], 0
    deadline = time.time() + 8
    while time.time() < deadline:
        producer.produce(topic, str(sent).encode())
        producer.flush(10)
        sent += 1
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            received.append(message.value())
    end = time.time() + 10
    while len(received) < sent and time.time() < end:
        message = consumer.poll(0.5)
        if message is not None and message.error() is None:
            received.append(message.value())
    consumer.close()
    assert received == [str(i).encode() for i in range(sent)]
    # Some connection authenticated several times: it re-authenticated.
    peers = re.findall(r"SASL authentication succeeded peer=(\S+)", broker.output())
    assert max(peers.count(p) for p in set(peers)) >= 3, peers


# --- the authenticated principal reaches the authorizer ---

def test_acls_see_the_sasl_principal(own_broker):
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)
    broker = own_broker("authorizer.class.name="
                        "org.apache.kafka.metadata.authorizer.StandardAuthorizer\n"
                        "super.users=User:admin")
    topic = topic_name()
    admin = AdminClient(ck_config(broker, "SCRAM-SHA-256", "admin", "admin-secret"))
    binding = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:alice",
                         "*", AclOperation.WRITE, AclPermissionType.ALLOW)
    for future in admin.create_acls([binding]).values():
        future.result(timeout=20)
    from confluent_kafka.admin import NewTopic
    admin.create_topics([NewTopic(topic, 1)])[topic].result(timeout=20)

    # alice may write the topic her ACL names, and nothing else.
    producer = Producer(ck_config(broker, "SCRAM-SHA-512"))
    delivered = {}
    other = topic_name()
    for name in (topic, other):
        producer.produce(name, b"by alice",
                         on_delivery=lambda err, msg: delivered.update({msg.topic(): err}))
    producer.flush(20)
    assert delivered[topic] is None
    assert delivered[other].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # Managing SCRAM users needs Alter on the cluster: admin (a super user) may, alice not.
    alice_admin = AdminClient(ck_config(broker, "PLAIN"))
    info = ScramCredentialInfo(CkScramMechanism.SCRAM_SHA_256, 4096)
    futures = alice_admin.alter_user_scram_credentials([CkUpsertion("eve", info, b"pw")])
    with pytest.raises(KafkaException) as refused:
        futures["eve"].result(timeout=20)
    assert refused.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    futures = admin.alter_user_scram_credentials([CkUpsertion("eve", info, b"pw")])
    futures["eve"].result(timeout=20)
