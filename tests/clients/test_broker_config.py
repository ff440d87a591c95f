"""Configuration seen from clients: listeners and advertised addresses,
environment in the Kafka image's convention, topic configs, admin HTTP."""
import subprocess
import time
import urllib.request

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

from conftest import BIN, free_port


def kcat_metadata(bootstrap):
    out = subprocess.run(["kcat", "-b", bootstrap, "-L"], capture_output=True, timeout=30, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_named_listeners_each_advertise_their_own_address(make_broker):
    internal, external = free_port(), free_port()
    broker = make_broker(port=internal, listeners=(
        f"INTERNAL://127.0.0.1:{internal},EXTERNAL://127.0.0.1:{external}"), extra=[
        "--override", f"advertised.listeners=INTERNAL://127.0.0.1:{internal},EXTERNAL://localhost:{external}",
        "--override", "listener.security.protocol.map=INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT",
        "--override", "inter.broker.listener.name=INTERNAL",
    ])
    assert f"broker 0 at 127.0.0.1:{internal}" in kcat_metadata(f"127.0.0.1:{internal}")
    assert f"broker 0 at localhost:{external}" in kcat_metadata(f"127.0.0.1:{external}")
    assert broker.proc.poll() is None


def test_kafka_host_url_is_advertised_for_a_wildcard_listener(make_broker):
    port = free_port()
    broker = make_broker(port=port, listeners=f"PLAINTEXT://0.0.0.0:{port}",
                         env={"kafka_host_url": f"localhost:{port}"})
    assert f"broker 0 at localhost:{port}" in kcat_metadata(broker.bootstrap)


def test_environment_sets_defaults_like_the_kafka_image(make_broker):
    broker = make_broker(env={"KAFKA_NUM_PARTITIONS": "3"})
    subprocess.run(["kcat", "-b", broker.bootstrap, "-P", "-t", "auto3"], input=b"x\n", check=True,
                   timeout=30)
    assert 'topic "auto3" with 3 partitions' in kcat_metadata(broker.bootstrap)


def test_topic_configs_are_described_with_overrides_and_defaults(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("configured", 2, 1, topic_configs={"retention.ms": "3600000"})])
    result = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "configured")])
    admin.close()
    overridden = result["topic"]["configured"]["retention.ms"]
    assert overridden["value"] == "3600000"
    assert overridden["config_source"] == "DYNAMIC_TOPIC_CONFIG"

    # librdkafka lists the defaults too.
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.admin import ConfigResource as Resource
    client = AdminClient({"bootstrap.servers": broker.bootstrap})
    future = client.describe_configs([Resource("topic", "configured")])
    entries = list(future.values())[0].result(timeout=10)
    assert entries["retention.ms"].value == "3600000"
    assert entries["segment.bytes"].value == "1073741824"
    assert entries["segment.bytes"].is_default
    assert entries["cleanup.policy"].value == "delete"


def test_invalid_topic_config_is_refused(broker):
    from kafka.errors import InvalidConfigurationError
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics([NewTopic("badcfg", 1, 1, topic_configs={"retention.ms": "soon"})])
        raise AssertionError("accepted a bad config")
    except InvalidConfigurationError:
        pass
    admin.close()


def test_admin_http_health_metrics_and_healthcheck(broker):
    subprocess.run(["kcat", "-b", broker.bootstrap, "-P", "-t", "metered"], input=b"a\nb\n",
                   check=True, timeout=30)
    base = f"http://127.0.0.1:{broker.admin_port}"
    assert urllib.request.urlopen(base + "/healthz").read() == b"ok\n"
    metrics = urllib.request.urlopen(base + "/metrics").read().decode()
    assert 'gregor_requests_total{api="Produce"}' in metrics
    assert 'gregor_log_end_offset{topic="metered",partition="0"} 2' in metrics
    ok = subprocess.run([str(BIN), "healthcheck", "--address", f"127.0.0.1:{broker.admin_port}"])
    assert ok.returncode == 0
    bad = subprocess.run([str(BIN), "healthcheck", "--address", f"127.0.0.1:{free_port()}"],
                         capture_output=True)
    assert bad.returncode == 1


def test_sigterm_stops_gracefully_and_quickly(broker):
    started = time.time()
    assert broker.stop() == 0
    assert time.time() - started < 5


def test_topic_configs_are_altered_and_take_effect(broker):
    from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry
    from confluent_kafka.admin import ConfigResource as Resource
    from kafka.admin import ConfigResource as KafkaResource

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("altered", 1, 1, topic_configs={"retention.ms": "3600000"})])
    # AlterConfigs replaces the whole set; kafka-python sends the current
    # overrides along so that retention.ms is kept.
    admin.alter_configs([KafkaResource(ConfigResourceType.TOPIC, "altered",
                                       configs={"segment.bytes": "1024"})], incremental=False)
    admin.close()

    client = AdminClient({"bootstrap.servers": broker.bootstrap})
    entries = list(client.describe_configs([Resource("topic", "altered")]).values())[0].result(10)
    assert entries["segment.bytes"].value == "1024"
    assert entries["retention.ms"].value == "3600000"

    # The new segment size applies to the live log.
    subprocess.run(["kcat", "-b", broker.bootstrap, "-P", "-t", "altered",
                    "-X", "batch.num.messages=5"],
                   input=b"".join(b"%0100d\n" % i for i in range(100)), check=True, timeout=30)
    assert len(list((broker.data_dir / "altered-0").glob("*.log"))) > 3

    # Incremental: set one key, delete another; a bad value is INVALID_CONFIG.
    change = Resource("topic", "altered", incremental_configs=[
        ConfigEntry("retention.ms", "120000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("segment.bytes", None, incremental_operation=AlterConfigOpType.DELETE),
    ])
    list(client.incremental_alter_configs([change]).values())[0].result(10)
    entries = list(client.describe_configs([Resource("topic", "altered")]).values())[0].result(10)
    assert entries["retention.ms"].value == "120000"
    assert entries["segment.bytes"].value == "1073741824"
    bad = Resource("topic", "altered", incremental_configs=[
        ConfigEntry("retention.ms", "soon", incremental_operation=AlterConfigOpType.SET)])
    try:
        list(client.incremental_alter_configs([bad]).values())[0].result(10)
        raise AssertionError("accepted retention.ms=soon")
    except Exception as e:
        assert "INVALID_CONFIG" in str(e) or "retention.ms" in str(e)


def test_kafka_topics_alter_config(broker):
    run = lambda *a: subprocess.run([str(BIN), "topics", *a, "--bootstrap-server", broker.bootstrap],
                                    capture_output=True, text=True, timeout=30)
    assert run("--create", "--topic", "cfg", "--partitions", "1", "--replication-factor", "1").returncode == 0
    altered = run("--alter", "--topic", "cfg", "--config", "retention.ms=1000")
    assert altered.returncode == 0, altered.stderr
    described = run("--describe", "--topic", "cfg")
    assert "retention.ms=1000" in described.stdout
