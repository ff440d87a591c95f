"""A coordinator quorum: three `gregor coordinator` processes on loopback
configured as a ZooKeeper ensemble (`server.N` lines and `myid`), brokers
with `zookeeper.connect` naming all three, kafka-python clients, and the
coordinators' HTTP API read with urllib as `curl` would."""
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from conftest import BIN, Broker, GregorProcess, free_port
from test_coordinator import consume, produce

# openraft elects after 1-2 s of silence; a few election timeouts.
FAILOVER_SECONDS = 10


class Member(GregorProcess):
    """One coordinator of the ensemble."""

    def __init__(self, tmp_path, my_id, ports, snapshot_after_entries=None):
        self.my_id = my_id
        self.data_dir = Path(tmp_path) / f"zk{my_id}"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "myid").write_text(f"{my_id}\n")
        self.port = ports[my_id][0]
        self.log_path = Path(tmp_path) / f"zk{my_id}.log"
        lines = [f"dataDir={self.data_dir}", f"clientPort={self.port}"]
        for n, (client, peer, election) in sorted(ports.items()):
            lines.append(f"server.{n}=127.0.0.1:{peer}:{election};{client}")
        if snapshot_after_entries:
            lines.append(f"gregor.quorum.snapshot.after.entries={snapshot_after_entries}")
        self.config = Path(tmp_path) / f"zk{my_id}.properties"
        self.config.write_text("\n".join(lines) + "\n")

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def args(self):
        return [str(BIN), "coordinator", str(self.config)]

    def call(self, method, path, body=None, timeout=10):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://{self.address}{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def quorum(self):
        return self.call("GET", "/v1/quorum")[1]

    def image(self):
        """This member's applied image (any member serves the log)."""
        return self.call("GET", "/v1/metadata/log?from=0")[1]["snapshot"]


@pytest.fixture
def ensemble(tmp_path):
    """Makes a three-member ensemble; kills every process at the end."""
    started = []

    class Make:
        def members(self, snapshot_after_entries=None):
            ports = {n: (free_port(), free_port(), free_port()) for n in (1, 2, 3)}
            members = [Member(tmp_path, n, ports, snapshot_after_entries) for n in (1, 2, 3)]
            started.extend(members)
            for member in members:
                member.start()
            return members

        def broker(self, members):
            connect = ",".join(m.address for m in members)
            broker = Broker(
                tmp_path / f"broker{len(started)}",
                extra=["--override", f"zookeeper.connect={connect}"],
            )
            started.append(broker)
            return broker.start()

    yield Make()
    for process in started:
        try:
            process.stop(signal.SIGKILL)
        except Exception:
            pass


def wait_until(condition, timeout=15.0, interval=0.1):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            value = condition()
        except (OSError, KeyError, TypeError) as error:
            value, last = None, error
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last error: {last})")


def leader(members):
    """The live member every live member agrees leads."""
    live = [m for m in members if m.proc is not None]
    views = [m.quorum() for m in live]
    ids = {v["leader_id"] for v in views}
    if len(ids) != 1 or None in ids:
        return None
    leader_id = ids.pop()
    return next((m for m in live if m.my_id == leader_id), None)


def register(member, broker_id):
    return member.call(
        "POST",
        "/v1/brokers/register",
        {
            "broker_id": broker_id,
            "incarnation_id": str(uuid.uuid4()),
            "listeners": [
                {"name": "PLAINTEXT", "host": "127.0.0.1", "port": 1, "security_protocol": "PLAINTEXT"}
            ],
            "rack": None,
        },
    )


def create_topic(bootstrap, name, partitions=1, configs=None):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, topic_configs=configs or {})]
        )
    finally:
        admin.close()


def test_members_agree_on_one_leader_and_one_cluster_id(ensemble):
    members = ensemble.members()
    first = wait_until(lambda: leader(members))
    status, cluster = first.call("GET", "/v1/cluster")
    assert status == 200 and len(cluster["cluster_id"]) == 22
    view = first.quorum()
    assert [v["id"] for v in view["voters"]] == [1, 2, 3]
    assert view["leader_epoch"] >= 1 and view["high_watermark"] >= 1
    follower = next(m for m in members if m is not first)
    status, refusal = register(follower, 7)
    assert status == 421 and refusal["error_code"] == 41
    assert refusal["leader_id"] == first.my_id and refusal["leader_address"] == first.address
    expected = {m.my_id: {"cluster_id": cluster["cluster_id"], "node_id": m.my_id} for m in members}

    def marker(member):
        # Written once the member has applied the cluster id.
        path = member.data_dir / "__cluster_metadata" / "meta.json"
        return json.loads(path.read_text()) if path.exists() else None

    wait_until(lambda: all(marker(m) == expected[m.my_id] for m in members))


def test_kill9_leader_then_a_new_leader_commits_and_every_member_has_all_state(ensemble):
    members = ensemble.members()
    broker = ensemble.broker(members)
    create_topic(broker.bootstrap, "before", partitions=2, configs={"retention.ms": "3600000"})
    produce(broker.bootstrap, "before", [f"b{i}".encode() for i in range(10)])

    old = wait_until(lambda: leader(members))
    old.kill9()
    killed_at = time.time()
    # A topic creation through the broker follows the new leader.
    wait_until(lambda: leader(members), timeout=FAILOVER_SECONDS)
    create_topic(broker.bootstrap, "after")
    assert time.time() - killed_at < FAILOVER_SECONDS + 5

    for member in members:
        if member.proc is None:
            continue
        image = wait_until(lambda: "after" in member.image()["topics"] and member.image())
        assert image["topics"]["before"]["configs"] == {"retention.ms": "3600000"}
        assert len(image["topics"]["before"]["partitions"]) == 2
        assert "0" in image["brokers"]

    # The killed member restarts and catches up from the log.
    old.start()
    caught_up = wait_until(lambda: "after" in old.image()["topics"] and old.image())
    assert "before" in caught_up["topics"]
    assert sorted(consume(broker.bootstrap, "before", 10)) == sorted(f"b{i}".encode() for i in range(10))


def test_a_member_behind_the_purged_log_catches_up_from_a_snapshot(ensemble):
    members = ensemble.members(snapshot_after_entries=4)
    first = wait_until(lambda: leader(members))
    behind = next(m for m in members if m is not first)
    behind.kill9()
    for broker_id in range(100, 130):
        status, answer = register(first, broker_id)
        assert status == 200, answer
    behind.start()
    image = wait_until(lambda: "129" in behind.image()["brokers"] and behind.image())
    assert all(str(i) in image["brokers"] for i in range(100, 130))
    assert (behind.data_dir / "__cluster_metadata" / "raft" / "snapshot").exists()


def test_a_minority_accepts_no_write(ensemble):
    members = ensemble.members()
    first = wait_until(lambda: leader(members))
    others = [m for m in members if m is not first]
    for member in others:
        member.kill9()
    # The lone former leader cannot commit; neither can a lone follower.
    status, answer = register(first, 5)
    assert status != 200, answer
    assert answer.get("error_code") in (7, 41), answer
    others[0].start()
    wait_until(lambda: leader([first, others[0]]), timeout=FAILOVER_SECONDS)
    status, answer = register(leader([first, others[0]]), 5)
    assert status == 200, answer


def test_broker_serves_existing_partitions_without_a_leader_and_after_a_new_one(ensemble):
    members = ensemble.members()
    broker = ensemble.broker(members)
    create_topic(broker.bootstrap, "steady")
    produce(broker.bootstrap, "steady", [b"one", b"two"])

    first = wait_until(lambda: leader(members))
    others = [m for m in members if m is not first]
    first.kill9()
    others[0].kill9()
    # No quorum: the data plane goes on with the metadata it has.
    produce(broker.bootstrap, "steady", [b"three"])
    assert consume(broker.bootstrap, "steady", 3) == [b"one", b"two", b"three"]

    others[0].start()
    wait_until(lambda: leader(others), timeout=FAILOVER_SECONDS)
    create_topic(broker.bootstrap, "later")
    produce(broker.bootstrap, "later", [b"four"])
    assert consume(broker.bootstrap, "later", 1) == [b"four"]
    produce(broker.bootstrap, "steady", [b"five"])
    assert consume(broker.bootstrap, "steady", 4) == [b"one", b"two", b"three", b"five"]


def test_tools_with_zookeeper_reach_the_leader_through_any_member(ensemble, tmp_path):
    members = ensemble.members()
    broker = ensemble.broker(members)
    create_topic(broker.bootstrap, "listed")
    first = wait_until(lambda: leader(members))
    follower = next(m for m in members if m is not first)
    tool = tmp_path / "kafka-topics.sh"
    tool.symlink_to(BIN)
    for zookeeper in (follower.address, ",".join(m.address for m in members)):
        listed = subprocess.run(
            [str(tool), "--list", "--zookeeper", zookeeper], capture_output=True, timeout=60
        )
        assert listed.returncode == 0, listed.stderr.decode()
        assert "listed" in listed.stdout.decode().split()


def test_members_speak_raft_over_mutual_tls(tmp_path):
    """With secureClientPort, the peer port is mutual TLS too: the members
    present their keystore to each other, and their principal needs
    ClusterAction (super.users), as brokers do."""
    import ssl

    tls = tmp_path / "tls"
    subprocess.run([str(BIN), "security", "init", str(tls)], check=True, capture_output=True)
    # The generated fragment's super users must let the members in.
    super_users = next(line for line in (tls / "coordinator.properties").read_text().splitlines(True)
                       if line.startswith("super.users="))
    ports = {n: (free_port(), free_port(), free_port()) for n in (1, 2, 3)}
    members = []
    try:
        for n in (1, 2, 3):
            member = Member(tmp_path, n, ports)
            text = member.config.read_text().replace(f"clientPort={member.port}", "")
            member.config.write_text(
                text
                + f"secureClientPort={member.port}\n"
                + f"ssl.keyStore.type=PEM\nssl.keyStore.location={tls}/coordinator-keystore.pem\n"
                + f"ssl.trustStore.type=PEM\nssl.trustStore.location={tls}/ca.pem\n"
                + "ssl.clientAuth=need\n"
                + super_users
            )
            members.append(member.start())
        context = ssl.create_default_context(cafile=str(tls / "ca.pem"))
        context.check_hostname = False
        context.load_cert_chain(str(tls / "client.pem"), str(tls / "client.key"))

        def leader_ids():
            ids = set()
            for member in members:
                url = f"https://{member.address}/v1/quorum"
                with urllib.request.urlopen(url, timeout=5, context=context) as reply:
                    ids.add(json.loads(reply.read())["leader_id"])
            return len(ids) == 1 and None not in ids

        wait_until(leader_ids, timeout=FAILOVER_SECONDS)
    finally:
        for member in members:
            member.stop(signal.SIGKILL)


def test_a_broker_started_while_the_quorum_restarts_waits_for_a_majority(ensemble, tmp_path):
    """After a whole-cluster crash the old leader comes back first and, by
    its persisted vote, leads a quorum it cannot confirm yet: it answers a
    registration REQUEST_TIMED_OUT. A broker started then keeps asking, as
    Kafka's does; it used to exit (found by the chaos harness's kill-all)."""
    members = ensemble.members()
    first = wait_until(lambda: leader(members))
    for member in members:
        member.kill9()
    first.start()
    broker = Broker(tmp_path / "early-broker",
                    extra=["--override", f"zookeeper.connect={','.join(m.address for m in members)}"])
    broker.log = open(broker.log_path, "ab")
    broker.proc = subprocess.Popen(broker.args(), env=broker.env, stdout=broker.log, stderr=broker.log)
    try:
        time.sleep(4)
        assert broker.proc.poll() is None, broker.output()
        for member in members:
            if member is not first:
                member.start()
        wait_until(lambda: "registered; waiting to be unfenced" in broker.output(), timeout=30)
        create_topic(f"127.0.0.1:{broker.port}", "after-the-crash")
        produce(f"127.0.0.1:{broker.port}", "after-the-crash", [b"one"])
        assert consume(f"127.0.0.1:{broker.port}", "after-the-crash", 1) == [b"one"]
    finally:
        broker.stop(signal.SIGKILL)


def test_the_whole_quorum_restarts_with_every_committed_command(ensemble):
    members = ensemble.members(snapshot_after_entries=10)
    first = wait_until(lambda: leader(members))
    for broker_id in range(200, 215):
        status, answer = register(first, broker_id)
        assert status == 200, answer
    cluster_id = first.call("GET", "/v1/cluster")[1]["cluster_id"]
    for member in members:
        member.kill9()
    for member in members:
        member.start()
    wait_until(lambda: leader(members), timeout=FAILOVER_SECONDS)
    for member in members:
        image = wait_until(lambda: "214" in member.image()["brokers"] and member.image())
        assert image["cluster_id"] == cluster_id
        assert all(str(i) in image["brokers"] for i in range(200, 215))


def test_metadata_quorum_tool_describes_status_and_replication(ensemble, tmp_path):
    members = ensemble.members()
    first = wait_until(lambda: leader(members))
    register(first, 3)
    tool = tmp_path / "kafka-metadata-quorum.sh"
    tool.symlink_to(BIN)
    follower = next(m for m in members if m is not first)

    def describe(what):
        done = subprocess.run(
            [str(tool), "--bootstrap-controller", follower.address, "describe", what],
            capture_output=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode()

    status = dict(line.split(":", 1) for line in describe("--status").splitlines())
    assert status["LeaderId"].strip() == str(first.my_id)
    assert int(status["LeaderEpoch"]) >= 1 and int(status["HighWatermark"]) >= 1
    assert status["CurrentVoters"].strip() == "[1,2,3]"
    assert len(status["ClusterId"].strip()) == 22
    rows = [line.split("\t") for line in describe("--replication").splitlines()[1:]]
    assert rows[0][0] == str(first.my_id) and rows[0][-1] == "Leader"
    assert sorted(r[0] for r in rows) == ["1", "2", "3"]
    # A follower that has caught up has the leader's log end offset.
    assert wait_until(lambda: all(
        r[2] == "0" for r in (line.split("\t") for line in describe("--replication").splitlines()[1:])
    ))
    refused = subprocess.run(
        [str(tool), "--bootstrap-server", "127.0.0.1:9092", "describe", "--status"],
        capture_output=True, timeout=60,
    )
    assert refused.returncode == 2 and b"--bootstrap-controller" in refused.stderr


def test_no_acknowledged_write_is_lost_across_a_leader_kill(ensemble):
    members = ensemble.members()
    target = wait_until(lambda: leader(members))
    acknowledged = []
    killed = None
    broker_id = 1000
    deadline = time.time() + 30
    while len([b for b in acknowledged if killed and b > killed]) < 10 and time.time() < deadline:
        if len(acknowledged) == 10 and killed is None:
            target.kill9()
            killed = broker_id
        try:
            status, answer = register(target, broker_id)
        except OSError:
            status, answer = None, {}
        if status == 200:
            acknowledged.append(broker_id)
            broker_id += 1
        elif answer.get("leader_address"):
            target = next(m for m in members if m.address == answer["leader_address"])
        else:
            # Refused, timed out or unreachable: ask another live member.
            live = [m for m in members if m.proc is not None and m is not target]
            target = live[broker_id % len(live)]
            time.sleep(0.1)
    assert killed is not None and len(acknowledged) >= 20, acknowledged
    for member in members:
        if member.proc is None:
            continue
        brokers = wait_until(lambda: str(acknowledged[-1]) in member.image()["brokers"]
                             and member.image()["brokers"])
        assert [b for b in acknowledged if str(b) not in brokers] == []
