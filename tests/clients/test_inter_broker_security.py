"""Inter-broker security: three brokers whose only listener is SASL_SSL
(SCRAM-SHA-512). Followers fetch from the leader over TLS as the SCRAM user
`broker` (inter.broker.listener.name, sasl.mechanism.inter.broker.protocol,
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config), and the leader
authorizes their replica fetches as Kafka does: ClusterAction on the
cluster, else CLUSTER_AUTHORIZATION_FAILED and the follower stays out of the
ISR. Clients (confluent-kafka, kafka-python) produce with acks=all and
consume over the same listener."""
import signal
import subprocess
import time

import pytest
from confluent_kafka import Consumer as CKConsumer
from confluent_kafka import OFFSET_BEGINNING
from confluent_kafka import Producer as CKProducer
from confluent_kafka import TopicPartition as CKTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from conftest import BIN, Broker, free_port
from test_coordinator import Coordinator, wait_until

TOPIC = "secured"
PARTITIONS = 3
LAG_MS = 3000
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
BROKER_LOGIN = ('org.apache.kafka.common.security.scram.ScramLoginModule required '
                'username="broker" password="broker-secret";')


class SecureCluster:
    """A coordinator and brokers 0..n-1, each with one SASL_SSL listener."""

    def __init__(self, tmp_path, super_users, protocol="SASL_SSL"):
        self.tmp_path = tmp_path
        self.protocol = protocol
        certs = tmp_path / "certs"
        subprocess.run([str(BIN), "security", "init", str(certs), "--hosts", "localhost,127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
        self.certs = certs
        self.cafile = str(certs / "ca.pem")
        if protocol == "SASL_SSL":
            login = ["sasl.enabled.mechanisms=SCRAM-SHA-512",
                     "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512",
                     f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config={BROKER_LOGIN}"]
        else:
            # Mutual TLS: each broker presents broker-keystore.pem to the
            # leader, and is User:CN=broker,O=gregor there.
            login = ["ssl.client.auth=required"]
        self.properties = tmp_path / "server.properties"
        self.properties.write_text("\n".join([
            f"ssl.keystore.location={certs}/broker-keystore.pem",
            f"ssl.truststore.location={self.cafile}",
            f"inter.broker.listener.name={protocol}",
            *login,
            f"authorizer.class.name={AUTHORIZER}",
            f"super.users={super_users}",
            f"replica.lag.time.max.ms={LAG_MS}",
        ]) + "\n")
        self.coordinator = Coordinator(tmp_path / "coordinator").start()
        self.brokers = {}

    def add_broker(self, broker_id):
        port = free_port()
        broker = Broker(
            self.tmp_path / f"broker{broker_id}",
            extra=[str(self.properties),
                   "--override", f"zookeeper.connect={self.coordinator.address}",
                   "--override", f"node.id={broker_id}"],
            env={"KAFKA_CLIENT_USERS": "broker,admin",
                 "KAFKA_CLIENT_PASSWORDS": "broker-secret,admin-secret"},
            listeners=f"{self.protocol}://127.0.0.1:{port}", port=port)
        self.brokers[broker_id] = broker
        return broker.start()

    def ck_config(self, broker_id=0):
        config = {"bootstrap.servers": self.brokers[broker_id].bootstrap,
                  "security.protocol": self.protocol, "ssl.ca.location": self.cafile}
        if self.protocol == "SASL_SSL":
            config.update({"sasl.mechanisms": "SCRAM-SHA-512",
                           "sasl.username": "admin", "sasl.password": "admin-secret"})
        else:
            config.update({"ssl.certificate.location": str(self.certs / "client.pem"),
                           "ssl.key.location": str(self.certs / "client.key")})
        return config

    def kp_config(self, broker_id=0):
        config = dict(bootstrap_servers=self.brokers[broker_id].bootstrap,
                      security_protocol=self.protocol, ssl_cafile=self.cafile)
        if self.protocol == "SASL_SSL":
            config.update(sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="admin",
                          sasl_plain_password="admin-secret")
        else:
            config.update(ssl_certfile=str(self.certs / "client.pem"),
                          ssl_keyfile=str(self.certs / "client.key"))
        return config

    def partitions(self, via):
        """Partition id -> librdkafka's PartitionMetadata (leader, replicas, isrs)."""
        metadata = AdminClient(self.ck_config(via)).list_topics(TOPIC, timeout=15)
        return metadata.topics[TOPIC].partitions

    def create_topic(self):
        admin = AdminClient(self.ck_config(0))
        created = admin.create_topics([NewTopic(
            TOPIC, num_partitions=PARTITIONS, replication_factor=3,
            config={"min.insync.replicas": "2"})])
        created[TOPIC].result(timeout=30)

    def stop_all(self):
        for process in [*self.brokers.values(), self.coordinator]:
            try:
                process.stop(signal.SIGKILL)
            except Exception:
                pass


def start_cluster(tmp_path, super_users, protocol="SASL_SSL"):
    cluster = SecureCluster(tmp_path, super_users, protocol)
    try:
        for broker_id in range(3):
            cluster.add_broker(broker_id)
        # Retried until all three brokers registered (RF=3) and the SCRAM
        # users exist.
        wait_until(lambda: try_create(cluster), timeout=60, interval=1)
    except BaseException:
        cluster.stop_all()
        raise
    return cluster


def try_create(cluster):
    try:
        cluster.create_topic()
    except Exception as error:
        return "TOPIC_ALREADY_EXISTS" in str(error)
    return True


def in_sync(cluster, via, size):
    try:
        found = cluster.partitions(via)
    except Exception:
        return False
    return len(found) == PARTITIONS and all(p.leader >= 0 and len(p.isrs) == size
                                            for p in found.values())


@pytest.fixture
def secure(tmp_path):
    cluster = start_cluster(tmp_path, "User:broker;User:admin")
    wait_until(lambda: in_sync(cluster, 0, 3), timeout=60, interval=0.5)
    yield cluster
    cluster.stop_all()


def listening_and_connected_ports(pid):
    """The TCP ports `pid` listens on, and the remote ports of its
    established connections (IPv4 and IPv6), from /proc."""
    import os
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    listening, remote = set(), set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                local, rem, state, inode = fields[1], fields[2], fields[3], fields[9]
                if inode not in inodes:
                    continue
                if state == "0A":
                    listening.add(int(local.rsplit(":", 1)[1], 16))
                elif state == "01":
                    remote.add(int(rem.rsplit(":", 1)[1], 16))
    return listening, remote


def produce_confluent(cluster, via, values_by_partition):
    acknowledged = {}

    def delivered(error, message):
        if error is None:
            acknowledged.setdefault(message.partition(), []).append(message.value())

    producer = CKProducer({**cluster.ck_config(via), "acks": "all",
                           "enable.idempotence": True, "linger.ms": 5})
    for partition, values in values_by_partition.items():
        for value in values:
            producer.produce(TOPIC, value, partition=partition, on_delivery=delivered)
            producer.poll(0)
    assert producer.flush(60) == 0
    return acknowledged


def consume_confluent(cluster, via, counts, timeout=60):
    consumer = CKConsumer({**cluster.ck_config(via), "group.id": "unused",
                           "enable.auto.commit": False})
    consumer.assign([CKTopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in counts])
    got, deadline = {p: [] for p in counts}, time.time() + timeout
    while time.time() < deadline and any(len(got[p]) < n for p, n in counts.items()):
        message = consumer.poll(0.5)
        if message is not None and not message.error():
            got[message.partition()].append(message.value())
    consumer.close()
    return got


def test_sasl_ssl_only_cluster_replicates_acks_all_with_both_clients(secure):
    values = {p: [f"ck-{p}-{i}".encode() for i in range(100)] for p in range(PARTITIONS)}
    assert produce_confluent(secure, 0, values) == values

    producer = KafkaProducer(**secure.kp_config(1), acks="all")
    more = {p: [f"kp-{p}-{i}".encode() for i in range(30)] for p in range(PARTITIONS)}
    for p, vs in more.items():
        for v in vs:
            producer.send(TOPIC, v, partition=p)
    producer.flush(timeout=60)
    producer.close()

    got = consume_confluent(secure, 2, {p: 130 for p in range(PARTITIONS)})
    assert got == {p: values[p] + more[p] for p in range(PARTITIONS)}

    consumer = KafkaConsumer(**secure.kp_config(0), consumer_timeout_ms=15000)
    consumer.assign([TopicPartition(TOPIC, p) for p in range(PARTITIONS)])
    consumer.seek_to_beginning()
    read = {p: [] for p in range(PARTITIONS)}
    for message in consumer:
        read[message.partition].append(message.value)
        if all(len(vs) == 130 for vs in read.values()):
            break
    consumer.close()
    assert read == got

    # Every follower fetched everything over SASL_SSL as User:broker (with
    # allow.everyone.if.no.acl.found off, nobody else may): each broker's
    # log holds the same bytes, and the ISR stays whole past the lag time.
    replicas_identical(secure)
    time.sleep(LAG_MS / 1000 * 1.5)
    assert in_sync(secure, 1, 3)
    # No plaintext path between brokers: each listens only on its SASL_SSL
    # port (and its admin HTTP port), and every connection one broker holds
    # to another goes to a SASL_SSL port.
    kafka_ports = {b.port for b in secure.brokers.values()}
    for broker in secure.brokers.values():
        listening, remote = listening_and_connected_ports(broker.proc.pid)
        assert listening == {broker.port, broker.admin_port}
        assert remote & kafka_ports, "a follower holds no connection to a leader"
        admin_ports = {b.admin_port for b in secure.brokers.values()}
        assert not (remote & admin_ports)


def test_an_ssl_only_cluster_replicates_with_mutual_tls(tmp_path):
    cluster = start_cluster(tmp_path, "User:CN=broker,O=gregor;User:CN=client,O=gregor", "SSL")
    try:
        wait_until(lambda: in_sync(cluster, 0, 3), timeout=60, interval=0.5)
        values = {p: [f"tls-{p}-{i}".encode() for i in range(50)] for p in range(PARTITIONS)}
        assert produce_confluent(cluster, 1, values) == values
        producer = KafkaProducer(**cluster.kp_config(2), acks="all")
        for i in range(10):
            producer.send(TOPIC, f"kp-{i}".encode(), partition=0)
        producer.flush(timeout=60)
        producer.close()
        got = consume_confluent(cluster, 2, {p: 50 + (10 if p == 0 else 0) for p in range(PARTITIONS)})
        assert got[0][50:] == [f"kp-{i}".encode() for i in range(10)]
        replicas_identical(cluster)
        time.sleep(LAG_MS / 1000 * 1.5)
        assert in_sync(cluster, 0, 3)
    finally:
        cluster.stop_all()


def test_a_killed_broker_rejoins_the_isr_over_sasl_ssl(secure):
    leader = secure.partitions(0)[0].leader
    follower = next(b for b in range(3) if b != leader)
    secure.brokers[follower].kill9()
    wait_until(lambda: follower not in secure.partitions(leader)[0].isrs, timeout=60, interval=0.5)

    values = {0: [f"while-down-{i}".encode() for i in range(50)]}
    assert produce_confluent(secure, leader, values) == values

    secure.brokers[follower].start()
    wait_until(lambda: in_sync(secure, leader, 3), timeout=60, interval=0.5)
    # The restarted follower fetched what was written while it was down:
    # its log of the partition holds the same bytes as the leader's.
    wait_until(lambda: log_bytes(secure, follower, 0) == log_bytes(secure, leader, 0) > 0,
               timeout=60, interval=0.5)
    got = consume_confluent(secure, follower, {0: 50})
    assert got[0] == values[0]


def replicas_identical(cluster):
    """Waits until every broker's log of every partition has the same,
    non-zero size: the followers appended the leader's batches as they are."""
    wait_until(lambda: all(
        len({log_bytes(cluster, b, p) for b in range(3)}) == 1 and log_bytes(cluster, 0, p) > 0
        for p in range(PARTITIONS)), timeout=60, interval=0.5)


def log_bytes(cluster, broker_id, partition):
    directory = cluster.brokers[broker_id].data_dir / f"{TOPIC}-{partition}"
    return sum(f.stat().st_size for f in directory.glob("*.log"))


def test_a_broker_principal_without_cluster_action_stays_out_of_the_isr(tmp_path):
    cluster = start_cluster(tmp_path, "User:admin")
    try:
        # The leaders drop the refused followers after replica.lag.time.max.ms.
        wait_until(lambda: in_sync(cluster, 0, 1), timeout=60, interval=0.5)
        time.sleep(LAG_MS / 1000 * 2)
        assert in_sync(cluster, 0, 1)
        leaders = {p.leader for p in cluster.partitions(0).values()}
        leader_logs = "".join(cluster.brokers[b].output() for b in leaders)
        assert "refused a replica fetch" in leader_logs
        assert "User:broker" in leader_logs
        follower_logs = "".join(cluster.brokers[b].output() for b in range(3))
        assert "CLUSTER_AUTHORIZATION_FAILED" in follower_logs
    finally:
        cluster.stop_all()


def start_broker_expecting_failure(tmp_path, lines):
    props = tmp_path / "bad.properties"
    props.write_text("\n".join(lines) + "\n")
    port = free_port()
    result = subprocess.run(
        [str(BIN), "broker", "--data-dir", str(tmp_path / "data"), str(props),
         "--listeners", f"SASL_PLAINTEXT://127.0.0.1:{port}",
         "--admin", f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=60)
    return result


@pytest.mark.parametrize("lines,expected", [
    (["inter.broker.listener.name=INTERNAL"], "must be a listener name defined in listeners"),
    (["inter.broker.listener.name=SASL_PLAINTEXT", "sasl.enabled.mechanisms=SCRAM-SHA-256",
      "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512"], "must be enabled on the inter-broker listener"),
    (["inter.broker.listener.name=SASL_PLAINTEXT"], "GSSAPI"),
    (["security.inter.broker.protocol=SASL_PLAINTEXT", "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256"],
     "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config is not set"),
])
def test_a_misconfigured_inter_broker_listener_fails_at_start_in_one_line(tmp_path, lines, expected):
    result = start_broker_expecting_failure(tmp_path, lines)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if expected in line]
    assert len(errors) == 1, result.stderr
