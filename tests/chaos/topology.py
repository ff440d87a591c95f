"""Where the cluster under test runs: processes on loopback, or a compose
project on a private subnet. Both give the nemesis the same verbs per node
(kill, start, terminate, pause, resume); compose adds the network and disk.

Nodes are a parameter: one broker with the coordinator in-process by
default; the three-node shapes are lists of `NodeSpec`s handed in by whoever
runs them (`--nodes FILE.json`): nodes/zk-cluster.json is the tutorial's
(three coordinators in a raft quorum, three brokers). For faults aimed at a
role rather than a node, `ComposeTopology.resolve` finds the partition
leader (Metadata), a follower and the quorum leader (`GET /v1/quorum`).
"""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def default_binary():
    return Path(os.environ.get("GREGOR_BIN", ROOT / "target" / "debug" / "gregor"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(host, port, timeout, alive=lambda: True):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not alive():
            raise RuntimeError(f"{host}:{port}: the server exited")
        try:
            with socket.create_connection((host, port), timeout=0.3):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} did not open within {timeout} s")


# ---------------------------------------------------------------- processes


class ProcessNode:
    """One gregor broker process on loopback. Its port and data directory
    stay the same across restarts, as a real node's would."""

    def __init__(self, name, binary, run_dir, extra_args=()):
        self.name = name
        self.binary = Path(binary)
        self.data_dir = Path(run_dir) / "nodes" / name
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = Path(run_dir) / "nodes" / f"{name}.log"
        self.port = free_port()
        self.admin_port = free_port()
        self.extra_args = list(extra_args)
        self.proc = None

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=30):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(self.binary), "broker", "--data-dir", str(self.data_dir),
             "--listeners", f"PLAINTEXT://127.0.0.1:{self.port}",
             "--admin", f"127.0.0.1:{self.admin_port}", *self.extra_args],
            stdout=log, stderr=log, env=dict(os.environ, GREGOR_LOG=os.environ.get("GREGOR_LOG", "info")))
        log.close()
        wait_for_port("127.0.0.1", self.port, timeout, lambda: self.proc.poll() is None)

    def signal(self, sig):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self):
        self.signal(signal.SIGKILL)
        if self.proc:
            self.proc.wait()

    def terminate(self, timeout=30):
        self.signal(signal.SIGTERM)
        if self.proc:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def wipe(self):
        shutil.rmtree(self.data_dir)
        self.data_dir.mkdir()

    def pause(self):
        self.signal(signal.SIGSTOP)

    def resume(self):
        self.signal(signal.SIGCONT)

    def running(self):
        return self.proc is not None and self.proc.poll() is None


class ProcessTopology:
    name = "processes"
    faults = ("kill", "terminate", "pause", "wipe")
    default_faults = ("kill", "terminate", "pause")

    def __init__(self, run_dir, binary=None, nodes=1, extra_args=()):
        binary = binary or default_binary()
        if not Path(binary).exists():
            raise FileNotFoundError(f"no gregor binary at {binary} (cargo build, or set GREGOR_BIN)")
        self.nodes = [ProcessNode(f"n{i + 1}", binary, run_dir, extra_args) for i in range(nodes)]

    @property
    def bootstrap(self):
        return ",".join(n.bootstrap for n in self.nodes)

    def up(self):
        for node in self.nodes:
            node.start()

    def down(self):
        for node in self.nodes:
            node.resume()
            node.kill()

    def describe(self):
        return [{"name": n.name, "address": n.bootstrap, "data_dir": str(n.data_dir)} for n in self.nodes]


# ---------------------------------------------------------------- compose


@dataclass
class NodeSpec:
    """One container of a compose topology. `env` and `command` may use
    {ip}, {name}, {data} (the data directory inside the container) and any
    node's name for its address ({zk1})."""
    name: str
    image: str = "gregor/broker:latest"
    env: dict = field(default_factory=dict)
    command: list | None = None
    kafka_port: int | None = 9092  # None: not a broker (a lone coordinator)
    # A coordinator's client port (2181): restarts wait for it, and the
    # quorum leader is asked for there.
    coordinator_port: int | None = None
    # The machine this container stands for: a majority/minority split cuts
    # between machines, so a coordinator and the broker beside it (same
    # `host`) stay on one side. Default: the node's own name.
    host: str | None = None
    cpus: float = 0.5
    memory: str = "256m"
    disk_mb: int = 64


def single_broker():
    return [NodeSpec("broker1", env={
        "KAFKA_LISTENERS": "PLAINTEXT://0.0.0.0:9092",
        "KAFKA_ADVERTISED_LISTENERS": "PLAINTEXT://{ip}:9092",
        "KAFKA_LOG_DIRS": "{data}",
    })]


def load_node_specs(path):
    return [NodeSpec(**spec) for spec in json.loads(Path(path).read_text())]


def run(*cmd, check=True, **kw):
    return subprocess.run(list(cmd), check=check, capture_output=True, text=True, **kw)


class ComposeNode:
    DISK_MOUNT = "/var/lib/gregor-disk"

    def __init__(self, topology, spec, ip):
        self.topology = topology
        self.spec = spec
        self.name = spec.name
        self.ip = ip
        self.disk_image = topology.run_dir / "disks" / f"{spec.name}.img"
        self.disk_dir = topology.run_dir / "disks" / spec.name
        self.container = f"{topology.project}_{spec.name}_1"

    @property
    def bootstrap(self):
        return f"{self.ip}:{self.spec.kafka_port}"

    def make_disk(self):
        """A small ext4 on a loop device, so that a full disk can be injected;
        the data directory is a subdirectory (ext4 adds lost+found)."""
        self.disk_dir.mkdir(parents=True, exist_ok=True)
        run("truncate", "-s", f"{self.spec.disk_mb}M", str(self.disk_image))
        run("mkfs.ext4", "-q", "-F", str(self.disk_image))
        run("mount", "-o", "loop", str(self.disk_image), str(self.disk_dir))
        (self.disk_dir / "data").mkdir()
        os.chown(self.disk_dir / "data", 1000, 1000)

    def wipe(self):
        data = self.disk_dir / "data"
        shutil.rmtree(data)
        data.mkdir()
        os.chown(data, 1000, 1000)

    def remove_disk(self):
        run("umount", str(self.disk_dir), check=False)

    @property
    def host(self):
        return self.spec.host or self.name

    @property
    def member_id(self):
        """A coordinator's quorum id (its ZOO_MY_ID, or a KRaft
        controller's KAFKA_NODE_ID), else None."""
        if not self.spec.coordinator_port:
            return None
        my_id = self.spec.env.get("ZOO_MY_ID", self.spec.env.get("KAFKA_NODE_ID"))
        return int(my_id) if my_id is not None else None

    def service(self):
        fmt = {n.name: n.ip for n in self.topology.nodes}
        fmt.update({"ip": self.ip, "name": self.name, "data": f"{self.DISK_MOUNT}/data"})
        svc = {
            "image": self.spec.image,
            "container_name": self.container,
            "environment": {k: str(v).format(**fmt) for k, v in self.spec.env.items()},
            "volumes": [f"{self.disk_dir}:{self.DISK_MOUNT}"],
            "networks": {"chaos": {"ipv4_address": self.ip}},
            "cpus": self.spec.cpus,
            "mem_limit": self.spec.memory,
            "stop_grace_period": "10s",
        }
        if self.spec.command:
            svc["command"] = [str(c).format(**fmt) for c in self.spec.command]
        return svc

    def pid(self):
        out = run("docker", "inspect", "-f", "{{.State.Pid}}", self.container).stdout.strip()
        if not out or out == "0":
            raise RuntimeError(f"{self.container} is not running")
        return out

    def in_netns(self, *cmd, check=True):
        return run("nsenter", "-t", self.pid(), "-n", *cmd, check=check)

    def kill(self):
        run("docker", "kill", "-s", "KILL", self.container, check=False)

    def terminate(self):
        run("docker", "stop", "-t", "15", self.container, check=False)

    def start(self, timeout=60):
        run("docker", "start", self.container)
        for port in (self.spec.kafka_port, self.spec.coordinator_port):
            if port:
                wait_for_port(self.ip, port, timeout)

    def pause(self):
        run("docker", "pause", self.container)

    def resume(self):
        run("docker", "unpause", self.container, check=False)


class ComposeTopology:
    """A compose project of our own: a pinned private subnet (every address
    the nemesis touches is checked to lie in it), CPU and memory limits per
    container, each node's data on its own loop-mounted filesystem. Clients
    on the host reach the containers' addresses directly over the bridge."""

    name = "compose"
    faults = ("kill", "terminate", "pause", "wipe", "isolate", "isolate-inbound", "loss", "slow", "disk-full",
              "kill-leader", "kill-follower", "kill-quorum-leader", "kill-all", "pause-leader",
              "pause-follower", "pause-quorum-leader", "pause-all", "split",
              "isolate-clients", "isolate-clients-leader", "rolling-restart", "move-partition",
              "replace-voter")
    default_faults = ("kill", "terminate", "pause", "isolate", "isolate-inbound", "loss", "slow", "disk-full")

    def __init__(self, run_dir, nodes=None, subnet="172.30.77.0/24", project=None):
        self.run_dir = Path(run_dir).resolve()
        self.subnet = ipaddress.ip_network(subnet)
        self.project = project or f"gregorchaos{os.getpid()}"
        hosts = list(self.subnet.hosts())
        self.gateway = str(hosts[0])
        self.nodes = [ComposeNode(self, spec, str(hosts[10 + i])) for i, spec in enumerate(nodes or single_broker())]
        # Controllers removed from the quorum for good (`replace-voter`):
        # stopped, and out of every fault's reach.
        self.retired = []
        self.compose_file = self.run_dir / "compose.json"

    @property
    def bootstrap(self):
        return ",".join(n.bootstrap for n in self.nodes if n.spec.kafka_port)

    def own(self, address):
        """Refuses any address outside this project's subnet."""
        if ipaddress.ip_address(address) not in self.subnet:
            raise ValueError(f"{address} is not in the chaos subnet {self.subnet}")
        return address

    def compose(self, *args, check=True):
        return run("docker-compose", "-p", self.project, "-f", str(self.compose_file), *args, check=check)

    def up(self):
        # JSON is YAML: docker-compose reads it as it is.
        spec = {
            "version": "2.4",
            "services": {n.name: n.service() for n in self.nodes},
            "networks": {"chaos": {"driver": "bridge", "ipam": {"config": [
                {"subnet": str(self.subnet), "gateway": self.gateway}]}}},
        }
        self.compose_file.write_text(json.dumps(spec, indent=2))
        for node in self.nodes:
            node.make_disk()
        self.compose("up", "-d")
        for node in self.nodes:
            for port in (node.spec.kafka_port, node.spec.coordinator_port):
                if port:
                    wait_for_port(node.ip, port, 60)

    def down(self):
        for node in self.nodes:
            node.resume()
        logs = self.compose("logs", "--no-color", check=False).stdout
        (self.run_dir / "containers.log").write_text(logs)
        self.compose("down", "-v", "-t", "5", check=False)
        for node in self.nodes + self.retired:
            node.remove_disk()

    def retire(self, node):
        """Takes a stopped node out of the topology for the rest of the run."""
        self.nodes.remove(node)
        self.retired.append(node)

    def describe(self):
        return [{"name": n.name, "container": n.container, "address": n.ip, "broker": bool(n.spec.kafka_port),
                 "coordinator": bool(n.spec.coordinator_port), "host": n.host,
                 "cpus": n.spec.cpus, "memory": n.spec.memory, "disk_mb": n.spec.disk_mb} for n in self.nodes]

    # ------------------------------------------------------------ roles

    def brokers(self):
        return [n for n in self.nodes if n.spec.kafka_port]

    def coordinators(self):
        return [n for n in self.nodes if n.spec.coordinator_port]

    def partition_replicas(self, topic, partition, timeout=10):
        """(leader id, replica ids, broker id -> node) of `topic`'s
        `partition`, from Metadata."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 3000})
        md = admin.list_topics(topic, timeout=timeout)
        by_id = {broker.id: next((n for n in self.brokers() if n.ip == broker.host), None)
                 for broker in md.brokers.values()}
        meta = md.topics[topic].partitions.get(partition)
        if meta is None:
            raise LookupError(f"{topic}-{partition} is not in the metadata")
        return meta.leader, list(meta.replicas), by_id

    def partition_roles(self, topic, partition, timeout=10):
        """(leader node, follower candidates) of `topic`'s `partition`, from
        Metadata. Followers are the partition's other replicas; with
        replication factor 1 there are none, so any other live broker."""
        leader_id, replicas, by_id = self.partition_replicas(topic, partition, timeout)
        if leader_id < 0 or by_id.get(leader_id) is None:
            raise LookupError(f"{topic}-{partition} has no leader now")
        leader = by_id[leader_id]
        followers = [by_id[r] for r in replicas if r != leader_id and by_id.get(r)]
        return leader, followers or [n for n in self.brokers() if n is not leader]

    def tool(self, name, *args, timeout=60, check=True):
        """One of gregor's Kafka tools (`reassign-partitions`, ...), run on
        the host against the cluster's brokers."""
        return run(str(default_binary()), name, "--bootstrap-server", self.bootstrap, *args,
                   timeout=timeout, check=check)

    def quorum_leader(self, timeout=10):
        """The coordinator that leads the quorum, asked of any member."""
        import urllib.request

        deadline = time.time() + timeout
        while time.time() < deadline:
            for node in self.coordinators():
                url = f"http://{self.own(node.ip)}:{node.spec.coordinator_port}/v1/quorum"
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        leader = json.load(response).get("leader_id")
                except (OSError, ValueError):
                    continue
                found = [n for n in self.coordinators() if n.member_id == leader]
                if found:
                    return found[0]
            time.sleep(0.3)
        raise LookupError("no coordinator names a quorum leader")

    def quorum_voters(self, timeout=10):
        """The quorum's voter ids, as its leader reports them."""
        import urllib.request

        leader = self.quorum_leader(timeout)
        url = f"http://{self.own(leader.ip)}:{leader.spec.coordinator_port}/v1/quorum"
        with urllib.request.urlopen(url, timeout=5) as response:
            return sorted(v["id"] for v in json.load(response)["voters"])

    def quorum_tool(self, via, *args, timeout=120, check=True):
        """kafka-metadata-quorum.sh, run on the host against `via`'s
        controller port."""
        return run(str(default_binary()), "metadata-quorum", "--bootstrap-controller",
                   f"{self.own(via.ip)}:{via.spec.coordinator_port}", *args, timeout=timeout, check=check)

    def resolve(self, role, rng, topic, partitions):
        """The node a role-targeted fault hits: `partition-leader`,
        `follower` (of a partition drawn with `rng`) or `quorum-leader`."""
        partition = rng.randrange(partitions)
        if role == "quorum-leader":
            return self.quorum_leader()
        leader, followers = self.partition_roles(topic, partition)
        if role == "partition-leader":
            return leader
        if role == "follower":
            return rng.choice(followers)
        raise ValueError(f"unknown role {role!r}")


def make_topology(name, run_dir, nodes_file=None, binary=None, broker_args=(), subnet="172.30.77.0/24"):
    if name == "processes":
        return ProcessTopology(run_dir, binary=binary, extra_args=broker_args)
    if name == "compose":
        return ComposeTopology(run_dir, nodes=load_node_specs(nodes_file) if nodes_file else None, subnet=subnet)
    raise ValueError(f"unknown topology {name!r} (processes or compose)")
