"""compose.kraft.yml end to end: three combined nodes
(process.roles=broker,controller, configured by the official Kafka image's
KAFKA_* variables) on a private network. The quorum elects a leader among
the three voters, a 6-partition topic gets leaders on all three nodes, the
host produces and consumes every partition through the EXTERNAL listeners,
and `docker kill` of the node leading the quorum leaves a quorum that
creates topics while the survivors' partitions keep serving; the killed
node comes back with its partitions' data. (The tutorial's apps in the file
are the same as compose.cluster.yml's and are not run here.)"""
import os
import re
import uuid

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from conftest import ROOT, free_port
from test_compose import Compose, compose_command
from test_compose_cluster import create_topic, leaders, wait_until

NODES = ("kafka-1", "kafka-2", "kafka-3")


class KraftCompose(Compose):
    """compose.kraft.yml as a project of its own; each node's EXTERNAL
    listener on a free host port."""

    def __init__(self, project):
        self.base = [*compose_command(), "-f", str(ROOT / "compose.kraft.yml"), "-p", project]
        self.ports = {name: free_port() for name in NODES}
        self.env = dict(os.environ, **{f"GREGOR_EXTERNAL_PORT_{i}": str(self.ports[name])
                                       for i, name in enumerate(NODES, start=1)})

    def bootstrap(self, node="kafka-1"):
        return f"localhost:{self.ports[node]}"

    def quorum(self, via="kafka-1"):
        """(LeaderId, CurrentVoters) from kafka-metadata-quorum.sh on `via`."""
        out = self("exec", "-T", via, "kafka-metadata-quorum.sh", "--bootstrap-controller",
                   "kafka-1:9093,kafka-2:9093,kafka-3:9093", "describe", "--status", check=False).stdout
        leader = re.search(r"LeaderId:\s*(\d+)", out)
        voters = re.search(r"CurrentVoters:\s*\[([^\]]*)\]", out)
        if not leader:
            return None
        ids = sorted(int(n) for n in re.findall(r"\d+", voters.group(1))) if voters else []
        return int(leader.group(1)), ids


@pytest.fixture
def kraft(images):
    if compose_command() is None:
        pytest.skip("needs docker-compose or the docker compose plugin")
    compose = KraftCompose(f"gregorkraft{uuid.uuid4().hex[:8]}")
    yield compose
    compose("down", "-v", "--remove-orphans", check=False)


def read_all(bootstrap, topic, partitions):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=8000)
    consumer.assign([TopicPartition(topic, p) for p in partitions])
    try:
        return sorted(m.value for m in consumer)
    finally:
        consumer.close()


def test_three_combined_nodes_elect_spread_leaders_and_survive_a_killed_quorum_leader(kraft):
    kraft("up", "-d", *NODES)
    for node in NODES:
        kraft.wait_healthy(node)
    leader, voters = wait_until(kraft.quorum, timeout=60)
    assert voters == [1, 2, 3] and leader in voters

    # Leaders on all three nodes; every partition reached from the host
    # through one node's EXTERNAL listener.
    assert wait_until(lambda: create_topic(kraft.bootstrap(), "spread", 6), timeout=60, interval=2)
    spread = wait_until(lambda: (lambda l: len(l) == 6 and -1 not in l.values() and l)(
        leaders(kraft.bootstrap("kafka-3"), "spread")), timeout=30)
    assert set(spread.values()) == {1, 2, 3}, spread
    producer = KafkaProducer(bootstrap_servers=kraft.bootstrap("kafka-2"), acks="all")
    for p in range(6):
        producer.send("spread", f"p{p}".encode(), partition=p).get(timeout=30)
    producer.close()
    assert read_all(kraft.bootstrap("kafka-3"), "spread", range(6)) == [f"p{p}".encode() for p in range(6)]

    # kill -9 of the node leading the quorum: the other two elect a leader
    # and create a topic; the survivors' partitions keep taking writes.
    kraft("kill", "-s", "SIGKILL", f"kafka-{leader}")
    survivor = next(n for n in NODES if n != f"kafka-{leader}")
    new_leader, _ = wait_until(lambda: (lambda q: q and q[0] != leader and q)(kraft.quorum(via=survivor)),
                               timeout=60, interval=2)
    assert new_leader in {1, 2, 3} - {leader}
    assert wait_until(lambda: create_topic(kraft.bootstrap(survivor), "after-failover", 3),
                      timeout=60, interval=2)
    alive = [p for p, node in spread.items() if node != leader]
    producer = KafkaProducer(bootstrap_servers=kraft.bootstrap(survivor), acks="all")
    for p in alive:
        producer.send("spread", f"after{p}".encode(), partition=p).get(timeout=30)
    producer.close()

    # The killed node restarts, rejoins the quorum and serves its
    # partitions with their data again.
    kraft("start", f"kafka-{leader}")
    kraft.wait_healthy(f"kafka-{leader}")
    assert wait_until(lambda: (lambda q: q and q[1] == [1, 2, 3] and q)(kraft.quorum(via=f"kafka-{leader}")),
                      timeout=60)
    expected = sorted([f"p{p}".encode() for p in range(6)] + [f"after{p}".encode() for p in alive])
    assert wait_until(lambda: read_all(kraft.bootstrap(f"kafka-{leader}"), "spread", range(6)) == expected,
                      timeout=60, interval=2)
