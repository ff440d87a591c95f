"""compose.cluster.yml end to end: three coordinators (a raft quorum set up
with ZOO_MY_ID / ZOO_SERVERS) and three brokers on a private network, the
tutorial's Python applications through one broker, leaders spread over the
brokers, the host reaching every broker on its EXTERNAL listener, and the
quorum surviving `docker kill` of its leader."""
import json
import os
import re
import time
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from conftest import ROOT, free_port
from test_compose import Compose, compose_command

BROKERS = ("broker1", "broker2", "broker3")
COORDINATORS = ("zk1", "zk2", "zk3")


class ClusterCompose(Compose):
    """compose.cluster.yml as a project of its own; each broker's EXTERNAL
    listener on a free host port."""

    def __init__(self, project):
        self.base = [*compose_command(), "-f", str(ROOT / "compose.cluster.yml"), "-p", project]
        self.ports = {name: free_port() for name in BROKERS}
        self.env = dict(os.environ, **{f"GREGOR_EXTERNAL_PORT_{i}": str(self.ports[name])
                                       for i, name in enumerate(BROKERS, start=1)})

    def bootstrap(self, broker="broker1"):
        return f"localhost:{self.ports[broker]}"

    def quorum_leader(self):
        """LeaderId from kafka-metadata-quorum.sh in a broker container."""
        out = self("exec", "-T", "broker1", "kafka-metadata-quorum.sh", "--bootstrap-controller",
                   "zk1:2181,zk2:2181,zk3:2181", "describe", "--status", check=False).stdout
        match = re.search(r"LeaderId:\s*(\d+)", out)
        return int(match.group(1)) if match else None


@pytest.fixture
def cluster(images, python_app):
    if compose_command() is None:
        pytest.skip("needs docker-compose or the docker compose plugin")
    compose = ClusterCompose(f"gregorcluster{uuid.uuid4().hex[:8]}")
    yield compose
    compose("down", "-v", "--remove-orphans", check=False)


def wait_until(condition, timeout, interval=1.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def create_topic(bootstrap, name, partitions):
    """True once the topic exists (a retry after a lost answer finds it)."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    except KafkaError:
        return False
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
        return True
    except TopicAlreadyExistsError:
        return True
    except KafkaError:
        return False
    finally:
        admin.close()


def leaders(bootstrap, topic):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        consumer.topics()  # a Metadata round trip for every topic
        cluster = consumer._client.cluster
        return {p: cluster.leader_for_partition(TopicPartition(topic, p))
                for p in cluster.partitions_for_topic(topic) or ()}
    finally:
        consumer.close()


def test_three_coordinators_and_three_brokers_serve_the_tutorials_apps(cluster):
    cluster("up", "-d")
    for service in (*COORDINATORS, *BROKERS):
        cluster.wait_healthy(service)

    # The tutorial's apps: the producer bootstraps through broker1, the
    # consumer through broker2; the consumer reads what the producer sent.
    def consumed():
        logs = cluster("logs", "--no-color", "consumer").stdout
        return [json.loads(line.split("| ", 1)[1])["value"] for line in logs.splitlines()
                if '"value"' in line]
    values = wait_until(lambda: len(consumed()) >= 10 and consumed(), timeout=120)
    assert [v["seq"] for v in values] == list(range(10))

    # A 6-partition topic gets leaders on all three brokers; the host reaches
    # every partition through one broker's EXTERNAL listener.
    assert create_topic(cluster.bootstrap(), "spread", 6)
    spread = wait_until(lambda: (lambda l: len(l) == 6 and -1 not in l.values() and l)(
        leaders(cluster.bootstrap("broker3"), "spread")), timeout=30)
    assert set(spread.values()) == {1, 2, 3}, spread
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap("broker2"))
    for p in range(6):
        producer.send("spread", f"p{p}".encode(), partition=p).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=cluster.bootstrap("broker3"),
                             auto_offset_reset="earliest", consumer_timeout_ms=8000)
    consumer.assign([TopicPartition("spread", p) for p in range(6)])
    assert sorted(m.value for m in consumer) == [f"p{p}".encode() for p in range(6)]
    consumer.close()

    # kill -9 of the quorum leader: another member leads and a topic can
    # still be created; the killed member comes back and rejoins.
    leader = wait_until(cluster.quorum_leader, timeout=30)
    cluster("kill", "-s", "SIGKILL", f"zk{leader}")
    wait_until(lambda: create_topic(cluster.bootstrap("broker2"), "after-failover", 3),
               timeout=60, interval=2)
    assert wait_until(lambda: (lambda l: l not in (None, leader) and l)(cluster.quorum_leader()),
                      timeout=30)
    assert len(wait_until(lambda: leaders(cluster.bootstrap(), "after-failover"), timeout=30)) == 3
    cluster("start", f"zk{leader}")
    cluster.wait_healthy(f"zk{leader}")
