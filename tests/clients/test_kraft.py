"""KRaft's shape: `gregor broker` processes with `process.roles`, `node.id`,
`controller.quorum.voters` (or `controller.quorum.bootstrap.servers`),
`controller.listener.names` and a CONTROLLER listener — set as the official
Kafka image's KAFKA_* variables or as properties — on loopback, driven by
confluent-kafka and kafka-python, and `kafka-metadata-quorum.sh` adding and
removing controllers."""
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import BIN, GregorProcess, free_port, wait_for_port
from test_brokers import CLIENTS, TOPIC_PARTITIONS, all_led, create_topic, leaders, values_for, wait_for_leaders
from test_coordinator import consume, produce, wait_until

# openraft elects after 1-2 s of silence; a few election timeouts.
FAILOVER_SECONDS = 10


class Node(GregorProcess):
    """One KRaft-shaped `gregor broker` process. `use_env` puts its KRaft
    settings in KAFKA_* variables, as the official image takes them."""

    def __init__(self, tmp_path, node_id, roles, controller_port=None, voters=None,
                 bootstrap_servers=None, use_env=False):
        self.node_id = node_id
        self.roles = roles
        self.data_dir = Path(tmp_path) / f"node{node_id}"
        self.kafka_port = free_port() if "broker" in roles else None
        self.controller_port = controller_port
        self.admin_port = free_port()
        self.log_path = Path(tmp_path) / f"node{node_id}.log"
        listeners = []
        if self.kafka_port:
            listeners.append(f"PLAINTEXT://127.0.0.1:{self.kafka_port}")
        if controller_port:
            listeners.append(f"CONTROLLER://127.0.0.1:{controller_port}")
        self.settings = {
            "process.roles": roles,
            "node.id": str(node_id),
            "controller.listener.names": "CONTROLLER",
            "listeners": ",".join(listeners),
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        }
        if self.kafka_port:
            self.settings["inter.broker.listener.name"] = "PLAINTEXT"
        if voters:
            self.settings["controller.quorum.voters"] = voters
        if bootstrap_servers:
            self.settings["controller.quorum.bootstrap.servers"] = bootstrap_servers
        self.use_env = use_env
        self.env = dict(os.environ, GREGOR_LOG="info")
        if use_env:
            for key, value in self.settings.items():
                self.env["KAFKA_" + key.upper().replace(".", "_")] = value
        self.config = Path(tmp_path) / f"node{node_id}.properties"
        self.config.write_text("".join(f"{k}={v}\n" for k, v in self.settings.items()))

    @property
    def port(self):
        return self.kafka_port or self.controller_port

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def controller(self):
        return f"127.0.0.1:{self.controller_port}"

    def args(self):
        config = [] if self.use_env else [str(self.config)]
        return [str(BIN), "broker", *config, "--data-dir", str(self.data_dir),
                "--admin", f"127.0.0.1:{self.admin_port}"]

    def launch(self):
        """Starts the process without waiting: a node with the broker role
        opens its Kafka port only once the quorum has a leader."""
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.args(), env=self.env, stdout=self.log, stderr=self.log)
        return self

    def ready(self, timeout=30.0):
        wait_for_port(self.port, self.proc, timeout)
        return self

    def start(self):
        return self.launch().ready()

    def quorum(self):
        with urllib.request.urlopen(f"http://{self.controller}/v1/quorum", timeout=5) as reply:
            return json.loads(reply.read())

    def image(self):
        url = f"http://{self.controller}/v1/metadata/log?from=0"
        with urllib.request.urlopen(url, timeout=5) as reply:
            return json.loads(reply.read())["snapshot"]


@pytest.fixture
def nodes(tmp_path):
    started = []

    class Make:
        def node(self, *args, **kwargs):
            node = Node(tmp_path, *args, **kwargs)
            started.append(node)
            return node

        def combined(self, count=3, use_env=False):
            ports = {n: free_port() for n in range(1, count + 1)}
            voters = ",".join(f"{n}@127.0.0.1:{p}" for n, p in ports.items())
            made = [self.node(n, "broker,controller", ports[n], voters=voters, use_env=use_env)
                    for n in ports]
            for node in made:
                node.launch()
            for node in made:
                node.ready()
            return made

    yield Make()
    for node in started:
        try:
            node.stop(signal.SIGKILL)
        except Exception:
            pass


def quorum_leader(nodes):
    """The live node every live controller agrees leads the quorum."""
    live = [n for n in nodes if n.proc is not None and n.controller_port]
    ids = {n.quorum()["leader_id"] for n in live}
    if len(ids) != 1 or None in ids:
        return None
    leader_id = ids.pop()
    return next((n for n in live if n.node_id == leader_id), None)


def create_topic_once(bootstrap, name, partitions):
    from kafka.errors import KafkaConnectionError, KafkaTimeoutError, TopicAlreadyExistsError
    try:
        create_topic(bootstrap, name, partitions=partitions)
    except TopicAlreadyExistsError:
        pass
    except (KafkaConnectionError, KafkaTimeoutError):
        return False
    return True


def metadata_quorum(tmp_path, *args):
    tool = tmp_path / "kafka-metadata-quorum.sh"
    if not tool.exists():
        tool.symlink_to(BIN)
    return subprocess.run([str(tool), *args], capture_output=True, timeout=90)


def status(tmp_path, controller):
    done = metadata_quorum(tmp_path, "--bootstrap-controller", controller, "describe", "--status")
    assert done.returncode == 0, done.stderr.decode()
    return {k.strip(): v.strip() for k, v in
            (line.split(":", 1) for line in done.stdout.decode().splitlines())}


def test_three_combined_nodes_from_kafka_env_spread_leaders_and_serve_every_client(nodes):
    cluster = nodes.combined(use_env=True)
    bootstrap = cluster[1].bootstrap
    create_topic(bootstrap, "spread")
    found = wait_for_leaders(bootstrap, "spread", all_led)
    assert set(found.values()) == {1, 2, 3}, found
    for name in ("confluent-kafka", "kafka-python-0.10.1", "kafka-python-auto"):
        topic = f"t-{name.replace('.', '-')}"
        create_topic(bootstrap, topic)
        wait_for_leaders(bootstrap, topic, all_led)
        got = CLIENTS[name](bootstrap, topic)
        assert {p: got.get(p) for p in range(TOPIC_PARTITIONS)} == \
            {p: values_for(p) for p in range(TOPIC_PARTITIONS)}, name
    # Every controller agrees on one leader and on the voters.
    leader = wait_until(lambda: quorum_leader(cluster))
    assert [v["id"] for v in leader.quorum()["voters"]] == [1, 2, 3]
    for node in cluster:
        marker = json.loads((node.data_dir / "__cluster_metadata" / "meta.json").read_text())
        assert marker["node_id"] == node.node_id


def test_kill9_the_quorum_leader_then_a_new_one_commits_and_survivors_serve(nodes):
    cluster = nodes.combined()
    create_topic(cluster[0].bootstrap, "before")
    found = wait_for_leaders(cluster[0].bootstrap, "before", all_led)
    old = wait_until(lambda: quorum_leader(cluster))
    survivors = [n for n in cluster if n is not old]
    old.kill9()
    killed_at = time.time()
    new = wait_until(lambda: quorum_leader(survivors), timeout=FAILOVER_SECONDS)
    assert new is not old
    bootstrap = survivors[0].bootstrap
    # As in Kafka, the killed broker stays in Metadata until its session
    # times out (9 s); kafka-python's admin gives up when it picks that
    # broker, so the application retries, as it would against Kafka.
    created = wait_until(lambda: create_topic_once(bootstrap, "after", 2), timeout=FAILOVER_SECONDS + 10)
    assert created and time.time() - killed_at < FAILOVER_SECONDS + 10
    # The survivors' partitions of the old topic keep serving.
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    theirs = [p for p, leader in found.items() if leader != old.node_id]
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for p in theirs:
        producer.send("before", f"kept-{p}".encode(), partition=p).get(timeout=30)
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=8000)
    consumer.assign([TopicPartition("before", p) for p in theirs])
    consumer.seek_to_beginning()
    got = sorted(m.value for m in consumer)
    consumer.close()
    assert got == sorted(f"kept-{p}".encode() for p in theirs)
    # The killed node restarts and catches up from the log.
    old.start()
    wait_until(lambda: "after" in old.image()["topics"], timeout=30)
    wait_for_leaders(old.bootstrap, "before", all_led, timeout=30)
    produce(old.bootstrap, "after", [b"back"])
    assert b"back" in consume(old.bootstrap, "after", 1)
    # SIGTERM: the broker's controlled shutdown first, then its controller.
    assert survivors[0].stop() == 0
    output = survivors[0].output()
    assert "controlled shutdown: the coordinator moved leadership away" in output
    assert output.index("broker stopped cleanly") < output.index("coordinator stopped cleanly")


def test_add_and_remove_controllers_one_at_a_time(nodes, tmp_path):
    port1 = free_port()
    first = nodes.node(1, "broker,controller", port1, voters=f"1@127.0.0.1:{port1}").start()
    create_topic(first.bootstrap, "early", partitions=1)
    joiners = [nodes.node(n, "controller", free_port(),
                          bootstrap_servers=first.controller).start() for n in (2, 3)]
    # A controller alone has no admin listener; its controller port answers
    # the container health check.
    health = subprocess.run([str(BIN), "healthcheck", "--address", joiners[0].controller],
                            capture_output=True, timeout=30)
    assert health.returncode == 0, health.stderr
    # By the new controller's properties, as Kafka's tool is run...
    added = metadata_quorum(tmp_path, "--bootstrap-controller", first.controller,
                            "--command-config", str(joiners[0].config), "add-controller")
    assert added.returncode == 0, added.stderr.decode()
    # ...or by id and address.
    added = metadata_quorum(tmp_path, "--bootstrap-controller", joiners[0].controller,
                            "add-controller", "--controller-id", "3",
                            "--controller-address", joiners[1].controller)
    assert added.returncode == 0, added.stderr.decode()
    assert status(tmp_path, joiners[1].controller)["CurrentVoters"] == "[1,2,3]"
    wait_until(lambda: "early" in joiners[1].image()["topics"])
    # A broker-only node finds the quorum through a bootstrap controller.
    broker = nodes.node(4, "broker", bootstrap_servers=joiners[1].controller).start()
    create_topic(broker.bootstrap, "late", partitions=1)
    produce(broker.bootstrap, "late", [b"x"])
    assert consume(broker.bootstrap, "late", 1) == [b"x"]
    # Brokers that are not voters are the quorum's observers, as in Kafka.
    assert status(tmp_path, first.controller)["CurrentObservers"] == "[4]"
    # Its data directory records its node id too.
    broker.stop()
    marker = json.loads((broker.data_dir / "__cluster_metadata" / "meta.json").read_text())
    assert marker["node_id"] == 4
    moved = Node(tmp_path, 6, "broker", bootstrap_servers=joiners[1].controller)
    moved.data_dir = broker.data_dir
    refused = subprocess.run(moved.args(), capture_output=True, timeout=30)
    assert refused.returncode != 0 and b"but this is node 6" in refused.stderr, refused.stderr

    duplicate = metadata_quorum(tmp_path, "--bootstrap-controller", first.controller,
                                "add-controller", "--controller-id", "2",
                                "--controller-address", joiners[0].controller)
    assert duplicate.returncode != 0 and b"DUPLICATE_VOTER" in duplicate.stderr
    removed = metadata_quorum(tmp_path, "--bootstrap-controller", first.controller,
                              "remove-controller", "--controller-id", "3",
                              "--controller-directory-id", "pqVnlIhOSK2RAOmWTN8vMA")
    assert removed.returncode == 0, removed.stderr.decode()
    assert status(tmp_path, first.controller)["CurrentVoters"] == "[1,2]"
    rows = metadata_quorum(tmp_path, "--bootstrap-controller", first.controller,
                           "describe", "--replication").stdout.decode().splitlines()[1:]
    assert sorted(r.split("\t")[0] for r in rows) == ["1", "2"]
    # A removed id is never reused.
    again = metadata_quorum(tmp_path, "--bootstrap-controller", first.controller,
                            "add-controller", "--controller-id", "3",
                            "--controller-address", joiners[1].controller)
    assert again.returncode != 0 and b"never reused" in again.stderr
    # Its data directory names its node id: another id is refused there.
    joiners[1].stop()
    other = Node(tmp_path, 3, "controller", free_port(), bootstrap_servers=first.controller)
    other.settings["node.id"] = "5"
    other.config.write_text("".join(f"{k}={v}\n" for k, v in other.settings.items()))
    refused = subprocess.run(other.args(), capture_output=True, timeout=30)
    assert refused.returncode != 0
    assert b"node 3" in refused.stderr and b"this is node 5" in refused.stderr


@pytest.mark.parametrize("change, message", [
    ({"node.id": "9"}, b"node id 9 must be included in the set of voters"),
    ({"listeners": "PLAINTEXT://127.0.0.1:1"}, b"controller.listener.names"),
    ({"node.id": None}, b"node.id"),
])
def test_configuration_errors_name_the_key_and_value(tmp_path, change, message):
    node = Node(tmp_path, 1, "broker,controller", free_port(), voters="1@127.0.0.1:1")
    for key, value in change.items():
        if value is None:
            node.settings.pop(key)
        else:
            node.settings[key] = value
    node.config.write_text("".join(f"{k}={v}\n" for k, v in node.settings.items()))
    done = subprocess.run(node.args(), capture_output=True, timeout=30)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr, done.stderr


def storage(tmp_path, *args):
    tool = tmp_path / "kafka-storage.sh"
    if not tool.exists():
        tool.symlink_to(BIN)
    done = subprocess.run([str(tool), *args], capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


def test_dynamic_quorum_formatted_standalone_grows_by_add_controller(nodes, tmp_path):
    """Kafka 4's way: every node names the quorum by
    controller.quorum.bootstrap.servers; the first is formatted
    --standalone with the cluster id, the next --no-initial-controllers
    and joins with add-controller."""
    port1, port2 = free_port(), free_port()
    servers = f"127.0.0.1:{port1},127.0.0.1:{port2}"
    first = nodes.node(1, "broker,controller", port1, bootstrap_servers=servers)
    second = nodes.node(2, "controller", port2, bootstrap_servers=servers)
    for node in (first, second):
        node.settings["log.dirs"] = str(node.data_dir)
        node.config.write_text("".join(f"{k}={v}\n" for k, v in node.settings.items()))
    cluster_id = storage(tmp_path, "random-uuid")
    assert len(cluster_id) == 22
    storage(tmp_path, "format", "-t", cluster_id, "-c", str(first.config), "--standalone")
    storage(tmp_path, "format", "-t", cluster_id, "-c", str(second.config), "--no-initial-controllers")
    again = subprocess.run([str(tmp_path / "kafka-storage.sh"), "format", "-t", cluster_id,
                            "-c", str(first.config), "--standalone"], capture_output=True, timeout=30)
    assert again.returncode == 1 and b"already formatted" in again.stderr
    first.start()
    second.start()
    before = status(tmp_path, first.controller)
    assert before["CurrentVoters"] == "[1]" and before["ClusterId"] == cluster_id
    added = metadata_quorum(tmp_path, "--bootstrap-controller", servers,
                            "--command-config", str(second.config), "add-controller")
    assert added.returncode == 0, added.stderr.decode()
    after = status(tmp_path, second.controller)
    assert after["CurrentVoters"] == "[1,2]" and after["ClusterId"] == cluster_id
    create_topic(first.bootstrap, "dynamic", partitions=1)
    wait_until(lambda: "dynamic" in second.image()["topics"])
