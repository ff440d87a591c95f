"""gregor's own tools over TLS and SASL, configured as Kafka's tools are:
`--command-config client.properties` (as `gregor security init` writes it)
against a SASL_SSL listener with SCRAM-SHA-512, and a client certificate
against an SSL listener with `ssl.client.auth=required`; the console tools
through `--producer.config`/`--consumer.config` and `-property`. A broker
with an authorizer whose super users are the SCRAM admin and the client
certificate's principal. Failures: a wrong password, a JKS truststore."""
import json
import re
import subprocess

import pytest

from conftest import BIN, Broker, free_port

AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
CERT_PRINCIPAL = "User:CN=client,O=gregor"
PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'user_admin="{}";')


def gregor(tool, *args, input=None, timeout=60):
    return subprocess.run([str(BIN), tool, *args], input=input, capture_output=True,
                          timeout=timeout)


def ok(result):
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    """A broker with SASL_SSL (`sasl_port`) and SSL with required client
    certificates (`ssl_port`) listeners; `sasl_config` and `ssl_config` are
    the tools' client properties for each."""
    root = tmp_path_factory.mktemp("cli-security")
    certs = root / "certs"
    init = subprocess.run([str(BIN), "security", "init", str(certs), "--hosts",
                           "localhost,127.0.0.1"], capture_output=True, timeout=60)
    assert init.returncode == 0, init.stderr.decode()
    hint = init.stderr.decode()
    password = re.search(r"KAFKA_CLIENT_PASSWORDS=(\w+)", hint).group(1)
    sasl_port, ssl_port, plain_port = free_port(), free_port(), free_port()
    overrides = [
        f"ssl.keystore.location={certs}/broker-keystore.pem",
        f"ssl.truststore.location={certs}/ca.pem",
        "listener.name.ssl.ssl.client.auth=required",
        f"authorizer.class.name={AUTHORIZER}",
        f"super.users=User:admin;{CERT_PRINCIPAL}",
        "listener.name.sasl_ssl.plain.sasl.jaas.config=" + PLAIN_JAAS.format(password),
    ]
    broker = Broker(
        root / "data", [arg for o in overrides for arg in ("--override", o)],
        env={"KAFKA_CLIENT_USERS": "admin", "KAFKA_CLIENT_PASSWORDS": password},
        listeners=(f"SASL_SSL://127.0.0.1:{sasl_port},SSL://127.0.0.1:{ssl_port},"
                   f"PLAINTEXT://127.0.0.1:{plain_port}"),
        port=sasl_port).start()
    broker.certs = certs
    broker.password = password
    broker.sasl_bootstrap = f"127.0.0.1:{sasl_port}"
    broker.ssl_bootstrap = f"127.0.0.1:{ssl_port}"
    broker.plain_bootstrap = f"127.0.0.1:{plain_port}"
    broker.sasl_config = certs / "client.properties"
    broker.ssl_config = certs / "client-ssl.properties"
    yield broker
    broker.kill9()


LISTENERS = ["sasl_ssl", "ssl"]


def endpoint(broker, listener):
    if listener == "sasl_ssl":
        return broker.sasl_bootstrap, str(broker.sasl_config)
    return broker.ssl_bootstrap, str(broker.ssl_config)


def test_security_init_writes_a_private_sasl_ssl_client_properties(secured):
    text = secured.sasl_config.read_text()
    assert "security.protocol=SASL_SSL" in text
    assert "sasl.mechanism=SCRAM-SHA-512" in text
    assert f'username="admin" password="{secured.password}"' in text
    assert secured.sasl_config.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("listener", LISTENERS)
def test_topics_create_list_describe(secured, listener):
    bootstrap, config = endpoint(secured, listener)
    topic = f"t-{listener}"
    ok(gregor("topics", "--bootstrap-server", bootstrap, "--command-config", config,
              "--create", "--topic", topic, "--partitions", "2", "--replication-factor", "1"))
    listed = ok(gregor("topics", "--bootstrap-server", bootstrap, "--command-config", config,
                       "--list"))
    assert topic in listed.split()
    described = ok(gregor("topics", "--bootstrap-server", bootstrap, "--command-config", config,
                          "--describe", "--topic", topic))
    assert "PartitionCount:2" in described.replace(" ", "").replace("\t", "")


@pytest.mark.parametrize("listener", LISTENERS)
def test_console_producer_and_consumer(secured, listener):
    bootstrap, config = endpoint(secured, listener)
    topic = f"lines-{listener}"
    lines = [f"line {i}" for i in range(5)]
    ok(gregor("console-producer", "--broker-list", bootstrap, "--topic", topic,
              "--producer.config", config, input="".join(f"{l}\n" for l in lines).encode()))
    out = ok(gregor("console-consumer", "--bootstrap-server", bootstrap, "--topic", topic,
                    "--consumer.config", config, "--from-beginning", "--max-messages", "5",
                    "--timeout-ms", "10000", "--group", f"g-{listener}"))
    assert out.splitlines() == lines
    groups = ok(gregor("consumer-groups", "--bootstrap-server", bootstrap,
                       "--command-config", config, "--list"))
    assert f"g-{listener}" in groups.split()


def test_console_tools_take_security_keys_as_properties(secured):
    certs = secured.certs
    props = ["security.protocol=SSL", "ssl.truststore.type=PEM",
             f"ssl.truststore.location={certs}/ca.pem", "ssl.keystore.type=PEM",
             f"ssl.keystore.location={certs}/client-keystore.pem"]
    producer = [a for p in props for a in ("--producer-property", p)]
    consumer = [a for p in props for a in ("--consumer-property", p)]
    ok(gregor("console-producer", "--broker-list", secured.ssl_bootstrap, "--topic", "props",
              *producer, input=b"one\ntwo\n"))
    out = ok(gregor("console-consumer", "--bootstrap-server", secured.ssl_bootstrap,
                    "--topic", "props", *consumer, "--from-beginning", "--max-messages", "2",
                    "--timeout-ms", "10000"))
    assert out.splitlines() == ["one", "two"]


@pytest.mark.parametrize("listener", LISTENERS)
def test_configs_describe(secured, listener):
    bootstrap, config = endpoint(secured, listener)
    topic = f"cfg-{listener}"
    ok(gregor("topics", "--bootstrap-server", bootstrap, "--command-config", config,
              "--create", "--topic", topic, "--partitions", "1", "--replication-factor", "1",
              "--config", "retention.ms=123456"))
    out = ok(gregor("configs", "--bootstrap-server", bootstrap, "--command-config", config,
                    "--describe", "--entity-type", "topics", "--entity-name", topic))
    assert "retention.ms=123456" in out


@pytest.mark.parametrize("listener", LISTENERS)
def test_acls_add_and_list(secured, listener):
    bootstrap, config = endpoint(secured, listener)
    topic = f"acl-{listener}"
    ok(gregor("acls", "--bootstrap-server", bootstrap, "--command-config", config, "--add",
              "--allow-principal", "User:alice", "--operation", "Read", "--topic", topic))
    out = ok(gregor("acls", "--bootstrap-server", bootstrap, "--command-config", config,
                    "--list", "--topic", topic))
    assert "User:alice" in out and "READ" in out.upper()


@pytest.mark.parametrize("listener", LISTENERS)
def test_delete_records(secured, listener, tmp_path):
    bootstrap, config = endpoint(secured, listener)
    topic = f"del-{listener}"
    ok(gregor("console-producer", "--broker-list", bootstrap, "--topic", topic,
              "--producer.config", config, input=b"a\nb\nc\n"))
    offsets = tmp_path / "offsets.json"
    offsets.write_text(json.dumps(
        {"partitions": [{"topic": topic, "partition": 0, "offset": 2}], "version": 1}))
    out = ok(gregor("delete-records", "--bootstrap-server", bootstrap, "--command-config", config,
                    "--offset-json-file", str(offsets)))
    assert "low_watermark: 2" in out


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_each_mechanism_logs_in(secured, tmp_path, mechanism):
    module = "plain.PlainLoginModule" if mechanism == "PLAIN" else "scram.ScramLoginModule"
    config = tmp_path / "mechanism.properties"
    config.write_text(
        "security.protocol=SASL_SSL\n"
        f"sasl.mechanism={mechanism}\n"
        f"sasl.jaas.config=org.apache.kafka.common.security.{module} required "
        f'username="admin" password="{secured.password}";\n'
        f"ssl.truststore.type=PEM\nssl.truststore.location={secured.certs}/ca.pem\n")
    ok(gregor("topics", "--bootstrap-server", secured.sasl_bootstrap,
              "--command-config", str(config), "--list"))


def test_a_wrong_password_fails_with_one_line(secured, tmp_path):
    config = tmp_path / "wrong.properties"
    config.write_text(secured.sasl_config.read_text().replace(secured.password, "not-it"))
    result = gregor("topics", "--bootstrap-server", secured.sasl_bootstrap,
                    "--command-config", str(config), "--list", timeout=30)
    assert result.returncode == 1
    error = result.stderr.decode().strip()
    assert len(error.splitlines()) == 1, error
    assert "authentication with SCRAM-SHA-512" in error and "failed" in error, error
    assert "not-it" not in error


def test_a_jks_truststore_is_refused_with_one_line(secured, tmp_path):
    store = tmp_path / "truststore.jks"
    store.write_bytes(b"\xfe\xed\xfe\xed\x00\x00\x00\x02")
    config = tmp_path / "jks.properties"
    config.write_text(f"security.protocol=SSL\nssl.truststore.location={store}\n"
                      "ssl.truststore.type=JKS\nssl.truststore.password=changeit\n")
    result = gregor("topics", "--bootstrap-server", secured.ssl_bootstrap,
                    "--command-config", str(config), "--list", timeout=30)
    assert result.returncode == 1
    error = result.stderr.decode().strip()
    assert len(error.splitlines()) == 1, error
    assert "ssl.truststore.type=JKS" in error and "PEM" in error, error


def test_without_a_client_certificate_the_ssl_listener_refuses(secured, tmp_path):
    config = tmp_path / "nocert.properties"
    config.write_text("security.protocol=SSL\nssl.truststore.type=PEM\n"
                      f"ssl.truststore.location={secured.certs}/ca.pem\n")
    result = gregor("topics", "--bootstrap-server", secured.ssl_bootstrap,
                    "--command-config", str(config), "--list", timeout=30)
    assert result.returncode == 1
    assert len(result.stderr.decode().strip().splitlines()) == 1, result.stderr.decode()


def test_host_name_check_can_be_turned_off(tmp_path):
    """A broker certificate for another host name is refused unless
    ssl.endpoint.identification.algorithm is empty, as in Kafka."""
    certs = tmp_path / "certs"
    subprocess.run([str(BIN), "security", "init", str(certs), "--hosts", "broker.example"],
                   check=True, capture_output=True, timeout=60)
    port = free_port()
    broker = Broker(tmp_path / "data",
                    ["--override", f"ssl.keystore.location={certs}/broker-keystore.pem"],
                    listeners=f"SSL://127.0.0.1:{port}", port=port).start()
    try:
        checked = tmp_path / "checked.properties"
        checked.write_text("security.protocol=SSL\nssl.truststore.type=PEM\n"
                           f"ssl.truststore.location={certs}/ca.pem\n")
        result = gregor("topics", "--bootstrap-server", f"127.0.0.1:{port}",
                        "--command-config", str(checked), "--list", timeout=30)
        assert result.returncode == 1, result.stdout.decode()
        assert "TLS handshake" in result.stderr.decode(), result.stderr.decode()
        unchecked = tmp_path / "unchecked.properties"
        unchecked.write_text(checked.read_text() + "ssl.endpoint.identification.algorithm=\n")
        ok(gregor("topics", "--bootstrap-server", f"127.0.0.1:{port}",
                  "--command-config", str(unchecked), "--list", timeout=30))
    finally:
        broker.kill9()


def test_the_wrong_protocol_for_a_listener_says_so(secured):
    plaintext_on_tls = gregor("topics", "--bootstrap-server", secured.ssl_bootstrap, "--list",
                              timeout=30)
    assert plaintext_on_tls.returncode == 1
    assert "SSL or SASL_SSL listener" in plaintext_on_tls.stderr.decode()
    tls_on_plaintext = gregor("topics", "--bootstrap-server", secured.plain_bootstrap,
                              "--command-config", str(secured.sasl_config), "--list", timeout=30)
    assert tls_on_plaintext.returncode == 1
    assert "PLAINTEXT or SASL_PLAINTEXT listener" in tls_on_plaintext.stderr.decode()
