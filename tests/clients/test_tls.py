"""TLS listeners with real clients: kafka-python, confluent-kafka, aiokafka
and kcat produce and consume over SSL; client certificates with
ssl.client.auth=required; clean failures (untrusted certificates on either
side, plaintext on the TLS port, TLS on the plaintext port) that leave the
broker serving; certificates re-read on SIGHUP. Certificates come from
`gregor security init` in a temporary directory."""
import asyncio
import hashlib
import signal
import socket
import ssl
import subprocess
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from conftest import BIN, free_port

TOPIC = "secure"


def security_init(directory, *flags):
    result = subprocess.run(
        [str(BIN), "security", "init", str(directory), "--hosts", "localhost,127.0.0.1", *flags],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr.decode()
    return directory


@pytest.fixture
def certs(tmp_path):
    return security_init(tmp_path / "certs")


@pytest.fixture
def other_certs(tmp_path):
    """A second, unrelated CA and its certificates."""
    return security_init(tmp_path / "other")


def start_tls_broker(make_broker, certs, client_auth="none", extra=()):
    """A broker with a PLAINTEXT listener (`port`) and an SSL one (`ssl_port`)."""
    plain, secure = free_port(), free_port()
    overrides = [
        f"ssl.keystore.location={certs}/broker-keystore.pem",
        f"ssl.truststore.location={certs}/ca.pem",
        f"ssl.client.auth={client_auth}",
        *extra,
    ]
    args = [arg for o in overrides for arg in ("--override", o)]
    broker = make_broker(
        extra=args,
        listeners=f"PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{secure}",
        port=plain,
        env={"GREGOR_LOG": "info,gregor::broker::connection=debug"},
    )
    broker.ssl_port = secure
    broker.ssl_bootstrap = f"127.0.0.1:{secure}"
    return broker


def python_ssl(certs, client_cert=True):
    options = {"security_protocol": "SSL", "ssl_cafile": f"{certs}/ca.pem"}
    if client_cert:
        options.update(ssl_certfile=f"{certs}/client.pem", ssl_keyfile=f"{certs}/client.key")
    return options


def kafka_python_round_trip(bootstrap, options, topic=TOPIC, count=20):
    producer = KafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=10000, **options)
    for i in range(count):
        producer.send(topic, f"m{i}".encode())
    producer.flush(timeout=20)
    producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10000,
        **options,
    )
    got = []
    for message in consumer:
        got.append(message.value)
        if len(got) == count:
            break
    consumer.close()
    assert got == [f"m{i}".encode() for i in range(count)]


def peer_certificate(port, cafile=None):
    """The DER certificate the TLS listener presents (verified against `cafile`)."""
    context = ssl.create_default_context(cafile=cafile) if cafile else ssl._create_unverified_context()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.getpeercert(binary_form=True)


def assert_still_serving(broker, certs):
    kafka_python_round_trip(broker.ssl_bootstrap, python_ssl(certs), topic="after", count=3)


# --- Clients -----------------------------------------------------------------


def test_kafka_python_with_a_client_certificate_is_that_principal(make_broker, certs):
    broker = start_tls_broker(make_broker, certs, client_auth="required")
    kafka_python_round_trip(broker.ssl_bootstrap, python_ssl(certs))
    # The principal mapped from the certificate (Kafka's DEFAULT rule).
    assert "principal=User:CN=client,O=gregor" in broker.output()


def test_kafka_python_without_client_auth_is_anonymous(make_broker, certs):
    broker = start_tls_broker(make_broker, certs, client_auth="none")
    kafka_python_round_trip(broker.ssl_bootstrap, python_ssl(certs, client_cert=False))
    assert "principal=User:ANONYMOUS" in broker.output()


def test_principal_mapping_rules_apply(make_broker, certs):
    broker = start_tls_broker(
        make_broker,
        certs,
        client_auth="required",
        extra=["ssl.principal.mapping.rules=RULE:^CN=(.*?),O=(.*)$/$1@$2/U,DEFAULT"],
    )
    kafka_python_round_trip(broker.ssl_bootstrap, python_ssl(certs), count=2)
    assert "principal=User:CLIENT@GREGOR" in broker.output()


def test_confluent_kafka_produces_and_consumes(make_broker, certs):
    from confluent_kafka import Consumer, Producer

    broker = start_tls_broker(make_broker, certs, client_auth="required")
    config = {
        "bootstrap.servers": broker.ssl_bootstrap,
        "security.protocol": "SSL",
        "ssl.ca.location": f"{certs}/ca.pem",
        "ssl.certificate.location": f"{certs}/client.pem",
        "ssl.key.location": f"{certs}/client.key",
    }
    producer = Producer(config)
    for i in range(20):
        producer.produce(TOPIC, f"c{i}".encode())
    assert producer.flush(30) == 0
    consumer = Consumer({**config, "group.id": "g", "auto.offset.reset": "earliest"})
    consumer.subscribe([TOPIC])
    got = []
    deadline = time.time() + 30
    while len(got) < 20 and time.time() < deadline:
        message = consumer.poll(1.0)
        if message is not None and message.error() is None:
            got.append(message.value())
    consumer.close()
    assert got == [f"c{i}".encode() for i in range(20)]


def test_aiokafka_produces_and_consumes(make_broker, certs):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.helpers import create_ssl_context

    broker = start_tls_broker(make_broker, certs, client_auth="required")

    async def scenario():
        context = create_ssl_context(
            cafile=f"{certs}/ca.pem",
            certfile=f"{certs}/client.pem",
            keyfile=f"{certs}/client.key",
        )
        options = dict(
            bootstrap_servers=broker.ssl_bootstrap, security_protocol="SSL", ssl_context=context
        )
        producer = AIOKafkaProducer(**options)
        await producer.start()
        try:
            for i in range(20):
                await producer.send_and_wait(TOPIC, f"a{i}".encode())
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(TOPIC, auto_offset_reset="earliest", **options)
        await consumer.start()
        got = []
        try:
            while len(got) < 20:
                batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 10)
                for records in batch.values():
                    got.extend(r.value for r in records)
        finally:
            await consumer.stop()
        return got

    assert asyncio.run(scenario()) == [f"a{i}".encode() for i in range(20)]


def test_kcat_produces_and_consumes(make_broker, certs):
    broker = start_tls_broker(make_broker, certs, client_auth="required")
    ssl_flags = [
        "-X", "security.protocol=ssl",
        "-X", f"ssl.ca.location={certs}/ca.pem",
        "-X", f"ssl.certificate.location={certs}/client.pem",
        "-X", f"ssl.key.location={certs}/client.key",
    ]

    def kcat(*args, input=None):
        result = subprocess.run(
            ["kcat", "-b", broker.ssl_bootstrap, *ssl_flags, *args],
            input=input,
            capture_output=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout.decode()

    lines = [f"k{i}" for i in range(20)]
    kcat("-P", "-t", TOPIC, input="\n".join(lines).encode() + b"\n")
    assert kcat("-C", "-t", TOPIC, "-e", "-o", "beginning").splitlines() == lines


# --- Failures ----------------------------------------------------------------


def test_client_without_a_certificate_is_refused_when_required(make_broker, certs):
    broker = start_tls_broker(make_broker, certs, client_auth="required")
    with pytest.raises(KafkaError):
        KafkaProducer(
            bootstrap_servers=broker.ssl_bootstrap,
            request_timeout_ms=3000,
            bootstrap_timeout_ms=3000,
            **python_ssl(certs, client_cert=False),
        )
    assert "TLS handshake failed" in broker.output()
    assert_still_serving(broker, certs)


def test_untrusted_client_certificate_is_refused(make_broker, certs, other_certs):
    broker = start_tls_broker(make_broker, certs, client_auth="required")
    foreign = python_ssl(certs)
    foreign.update(ssl_certfile=f"{other_certs}/client.pem", ssl_keyfile=f"{other_certs}/client.key")
    with pytest.raises(KafkaError):
        KafkaProducer(
            bootstrap_servers=broker.ssl_bootstrap,
            request_timeout_ms=3000,
            bootstrap_timeout_ms=3000,
            **foreign,
        )
    assert "TLS handshake failed" in broker.output()
    assert_still_serving(broker, certs)


def test_untrusted_server_certificate_is_refused_by_the_client(make_broker, certs, other_certs):
    broker = start_tls_broker(make_broker, certs)
    with pytest.raises(ssl.SSLCertVerificationError):
        peer_certificate(broker.ssl_port, cafile=f"{other_certs}/ca.pem")
    with pytest.raises(KafkaError):
        KafkaProducer(
            bootstrap_servers=broker.ssl_bootstrap,
            request_timeout_ms=3000,
            bootstrap_timeout_ms=3000,
            **python_ssl(other_certs, client_cert=False),
        )
    assert_still_serving(broker, certs)


def test_plaintext_client_on_the_tls_port_is_closed(make_broker, certs):
    broker = start_tls_broker(make_broker, certs)
    with pytest.raises(KafkaError):
        KafkaProducer(
            bootstrap_servers=broker.ssl_bootstrap,
            request_timeout_ms=3000,
            bootstrap_timeout_ms=3000,
        )
    assert "TLS handshake failed" in broker.output()
    assert_still_serving(broker, certs)


def test_tls_client_on_the_plaintext_port_is_closed(make_broker, certs):
    broker = start_tls_broker(make_broker, certs)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        peer_certificate(broker.port, cafile=f"{certs}/ca.pem")
    with pytest.raises(KafkaError):
        KafkaProducer(
            bootstrap_servers=broker.bootstrap,
            request_timeout_ms=3000,
            bootstrap_timeout_ms=3000,
            **python_ssl(certs),
        )
    assert "look like a TLS handshake" in broker.output()
    assert_still_serving(broker, certs)
    # The plaintext listener still serves plaintext clients.
    kafka_python_round_trip(broker.bootstrap, {}, topic="plain", count=2)


def test_a_slow_handshake_does_not_block_other_clients(make_broker, certs):
    broker = start_tls_broker(make_broker, certs)
    # Connected, but never says hello: only its own task waits for it.
    with socket.create_connection(("127.0.0.1", broker.ssl_port)):
        assert_still_serving(broker, certs)


# --- Reload ------------------------------------------------------------------


def fingerprint(der):
    return hashlib.sha256(der).hexdigest()


def test_sighup_reloads_renewed_certificates(make_broker, certs):
    broker = start_tls_broker(make_broker, certs)
    before = fingerprint(peer_certificate(broker.ssl_port, cafile=f"{certs}/ca.pem"))
    security_init(certs, "--keep-ca")
    broker.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    after = before
    while after == before and time.time() < deadline:
        time.sleep(0.1)
        after = fingerprint(peer_certificate(broker.ssl_port, cafile=f"{certs}/ca.pem"))
    with open(f"{certs}/broker.pem", "rb") as f:
        renewed = ssl.PEM_cert_to_DER_cert(f.read().decode().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n")
    assert after == fingerprint(renewed)
    assert "TLS certificates reloaded" in broker.output()
    assert_still_serving(broker, certs)


def test_a_new_ca_after_sighup_is_served_too(make_broker, certs):
    broker = start_tls_broker(make_broker, certs)
    before = fingerprint(peer_certificate(broker.ssl_port))
    security_init(certs, "--force")
    broker.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while fingerprint(peer_certificate(broker.ssl_port)) == before and time.time() < deadline:
        time.sleep(0.1)
    # Verifies against the new CA; the client certificate is from it too.
    peer_certificate(broker.ssl_port, cafile=f"{certs}/ca.pem")
    assert_still_serving(broker, certs)


def test_a_bad_new_keystore_keeps_the_old_certificates(make_broker, certs):
    broker = start_tls_broker(make_broker, certs)
    before = fingerprint(peer_certificate(broker.ssl_port, cafile=f"{certs}/ca.pem"))
    (certs / "broker-keystore.pem").write_text("not a certificate\n")
    broker.proc.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while "TLS certificates not reloaded" not in broker.output() and time.time() < deadline:
        time.sleep(0.1)
    assert "TLS certificates not reloaded" in broker.output()
    assert fingerprint(peer_certificate(broker.ssl_port, cafile=f"{certs}/ca.pem")) == before
    assert_still_serving(broker, certs)


# --- Start-up checks ---------------------------------------------------------


def run_broker_expecting_failure(tmp_path, *overrides):
    port = free_port()
    args = [
        str(BIN), "broker",
        "--data-dir", str(tmp_path / "refused"),
        "--listeners", f"SSL://127.0.0.1:{port}",
        "--admin", f"127.0.0.1:{free_port()}",
    ]
    for override in overrides:
        args += ["--override", override]
    result = subprocess.run(args, capture_output=True, timeout=30)
    return result.returncode, result.stderr.decode()


def test_jks_keystore_is_refused_with_one_line(tmp_path, certs):
    code, stderr = run_broker_expecting_failure(
        tmp_path, "ssl.keystore.type=JKS", "ssl.keystore.location=/etc/kafka/broker.jks"
    )
    assert code == 2, stderr
    assert "use ssl.keystore.type=PEM" in stderr


def test_missing_keystore_file_stops_the_start(tmp_path):
    code, stderr = run_broker_expecting_failure(
        tmp_path, f"ssl.keystore.location={tmp_path}/nope.pem"
    )
    assert code != 0
    assert "nope.pem" in stderr


def test_large_fetches_over_tls_complete(make_broker, certs):
    # Responses far larger than a socket buffer: TLS records the socket
    # could not take at once must still be sent without another request.
    broker = start_tls_broker(make_broker, certs)
    options = python_ssl(certs, client_cert=False)
    producer = KafkaProducer(
        bootstrap_servers=broker.ssl_bootstrap, max_request_size=2_000_000, **options
    )
    payload = bytes(range(256)) * 3000
    for i in range(60):
        producer.send("large", payload + str(i).encode())
    producer.flush(timeout=60)
    producer.close()
    consumer = KafkaConsumer(
        "large",
        bootstrap_servers=broker.ssl_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=20000,
        fetch_max_bytes=50_000_000,
        max_partition_fetch_bytes=50_000_000,
        **options,
    )
    got = 0
    for message in consumer:
        assert message.value == payload + str(got).encode()
        got += 1
        if got == 60:
            break
    consumer.close()
    assert got == 60


def test_a_changed_keystore_file_is_reloaded_without_a_signal(make_broker, certs):
    broker = start_tls_broker(make_broker, certs)
    before = fingerprint(peer_certificate(broker.ssl_port, cafile=f"{certs}/ca.pem"))
    security_init(certs, "--keep-ca")
    deadline = time.time() + 15
    after = before
    while after == before and time.time() < deadline:
        time.sleep(0.5)
        after = fingerprint(peer_certificate(broker.ssl_port, cafile=f"{certs}/ca.pem"))
    assert after != before, "the renewed certificate is served within the poll interval"


def test_requested_client_auth_takes_a_certificate_when_offered(make_broker, certs):
    broker = start_tls_broker(make_broker, certs, client_auth="requested")
    kafka_python_round_trip(broker.ssl_bootstrap, python_ssl(certs, client_cert=False), count=2)
    assert "principal=User:ANONYMOUS" in broker.output()
    kafka_python_round_trip(broker.ssl_bootstrap, python_ssl(certs), topic="with-cert", count=2)
    assert "principal=User:CN=client,O=gregor" in broker.output()


def test_the_certificate_principal_is_what_acls_see(make_broker, certs):
    broker = start_tls_broker(
        make_broker,
        certs,
        client_auth="requested",
        extra=[
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:CN=client,O=gregor",
        ],
    )
    # The certificate's principal is a super user: everything is allowed.
    kafka_python_round_trip(broker.ssl_bootstrap, python_ssl(certs), topic="guarded", count=2)
    # Without a certificate the same client is User:ANONYMOUS, with no ACL.
    from kafka.errors import TopicAuthorizationFailedError

    producer = KafkaProducer(
        bootstrap_servers=broker.ssl_bootstrap,
        max_block_ms=5000,
        **python_ssl(certs, client_cert=False),
    )
    with pytest.raises((TopicAuthorizationFailedError, KafkaError)) as refused:
        producer.send("guarded", b"x").get(timeout=10)
    producer.close()
    assert isinstance(refused.value, TopicAuthorizationFailedError), refused.value
