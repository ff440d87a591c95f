"""Faults and the nemesis that rotates them.

Every fault is `inject(topology, node) -> heal`: injecting returns the
function that undoes it, and the nemesis always calls it (at the end of the
fault's hold time, or at shutdown). Role-targeted faults (`kill-leader`,
`pause-quorum-leader`, ...) find their node when they begin, from the
cluster's own answers (Metadata, `GET /v1/quorum`); `kill-all`, `pause-all`
and `split` act on the whole topology. The schedule is Bufstream's: a quiet
period, then one fault chosen at random on a node chosen at random, held for
a while, healed; repeat. It is drawn up front from a seed and printed, so a
run can be repeated.
"""
from __future__ import annotations

import functools
import json
import os
import random
import threading
import time
from dataclasses import asdict, dataclass


# ---------------------------------------------------------------- the faults


def kill(topology, node):
    node.kill()
    return node.start


def terminate(topology, node):
    node.terminate()
    return node.start


def wipe(topology, node):
    """kill -9, then the node restarts with an empty data directory: what a
    lost disk looks like. A single node cannot survive it (everything is
    gone), so it is how the checker is shown to catch lost data; a
    replicated cluster must."""
    node.kill()
    node.wipe()
    return node.start


def pause(topology, node):
    node.pause()
    return node.resume


def iptables_rules(topology, node, chains, extra=()):
    """DROP rules for traffic between `node` and the rest of the project's
    subnet (the other nodes and, through the gateway, the clients)."""
    subnet = str(topology.subnet)
    topology.own(node.ip)
    rules = []
    for chain in chains:
        direction = "-s" if chain == "INPUT" else "-d"
        rules.append([chain, direction, subnet, *extra, "-j", "DROP"])
    return rules


def with_iptables(topology, node, rules):
    for rule in rules:
        node.in_netns("iptables", "-I", *rule)

    def heal():
        for rule in rules:
            node.in_netns("iptables", "-D", *rule, check=False)
    return heal


def isolate(topology, node):
    """The node can neither send to nor receive from anyone."""
    return with_iptables(topology, node, iptables_rules(topology, node, ["INPUT", "OUTPUT"]))


def isolate_inbound(topology, node):
    """One-way: the node's packets go out, nothing comes in."""
    return with_iptables(topology, node, iptables_rules(topology, node, ["INPUT"]))


def isolate_clients(topology, node):
    """Client↔node: the node drops everything to and from the clients (on the
    host, behind the bridge's gateway) and still talks to the other nodes."""
    gateway = topology.own(topology.gateway)
    return with_iptables(topology, node, [["INPUT", "-s", gateway, "-j", "DROP"],
                                          ["OUTPUT", "-d", gateway, "-j", "DROP"]])


def loss(topology, node, probability=0.25):
    extra = ["-m", "statistic", "--mode", "random", "--probability", str(probability)]
    return with_iptables(topology, node, iptables_rules(topology, node, ["INPUT", "OUTPUT"], extra))


def slow(topology, node):
    """A slow link: a token bucket of 256 kbit/s on the node's interface
    (this kernel has no netem, so no delay or reordering)."""
    node.in_netns("tc", "qdisc", "add", "dev", "eth0", "root", "tbf",
                  "rate", "256kbit", "burst", "16kbit", "latency", "400ms")
    return lambda: node.in_netns("tc", "qdisc", "del", "dev", "eth0", "root", check=False)


def disk_full(topology, node):
    """Fills the node's loop filesystem to the last block, then frees it."""
    fill = node.disk_dir / "fill"
    with open(fill, "wb") as f:
        chunk = b"\0" * (1 << 20)
        try:
            while True:
                f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            pass  # ENOSPC: full

    def heal():
        fill.unlink(missing_ok=True)
    return heal


def kill_all(topology, node):
    """kill -9 of every container at once, then all restart: coordinators
    first (a quorum needs a majority back before brokers can register)."""
    for each in topology.nodes:
        each.kill()

    def heal():
        for each in sorted(topology.nodes, key=lambda n: not n.spec.coordinator_port):
            each.start()
    return heal


def rolling_restart(topology, node):
    """What an operator's upgrade does: each node in turn stopped with
    SIGTERM (controlled shutdown) and started again, coordinators first,
    the next one only once the last listens. Nothing is left to heal."""
    for each in sorted(topology.nodes, key=lambda n: not n.spec.coordinator_port):
        each.terminate()
        each.start()
    return lambda: None


def pause_all(topology, node):
    """Every container paused at once (a host-wide stall), then resumed."""
    paused = []
    try:
        for each in topology.nodes:
            each.pause()
            paused.append(each)
    except Exception:
        for each in paused:
            each.resume()
        raise

    def heal():
        for each in paused:
            each.resume()
    return heal


def split(topology, node):
    """Majority/minority: `node`'s machine (its `host`: a coordinator and the
    broker beside it) loses every packet to and from the other machines'
    containers. Clients on the host still reach both sides, as clients in
    either half of a real split would."""
    minority = [n for n in topology.nodes if n.host == node.host]
    majority = [n for n in topology.nodes if n.host != node.host]
    if not majority:
        raise ValueError("a split needs more than one machine")
    heals = []
    try:
        for inside in minority:
            rules = []
            for outside in majority:
                address = topology.own(outside.ip)
                rules += [["INPUT", "-s", address, "-j", "DROP"], ["OUTPUT", "-d", address, "-j", "DROP"]]
            heals.append(with_iptables(topology, inside, rules))
    except Exception:
        for heal in heals:
            heal()
        raise

    def heal_all():
        for heal in heals:
            heal()
    return heal_all


def move_partition(topology, topic, partition, rng, settle=90.0):
    """A partition's membership changes under load: one of its replicas,
    drawn (the leader too), is moved off it with kafka-reassign-partitions.sh
    (to a broker that holds no copy if there is one, else the partition just
    loses that replica), and healing moves it back. The broker left behind
    deletes its copy; moved back, it copies the log again from the leader.
    Each move is waited for until `--verify` says it completed."""
    _, replicas, by_id = topology.partition_replicas(topic, partition)
    leaving = rng.choice(replicas)
    spare = [b for b in sorted(by_id) if b not in replicas]
    target = [r for r in replicas if r != leaving] + spare[:1]
    if not target:
        raise LookupError(f"{topic}-{partition} has nowhere to move to")
    reassign(topology, topic, partition, target, settle)

    def heal():
        reassign(topology, topic, partition, replicas, settle)
    return heal


def reassign(topology, topic, partition, replicas, settle):
    plan = topology.run_dir / f"reassign-{topic}-{partition}-{'-'.join(map(str, replicas))}.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": topic, "partition": partition, "replicas": replicas}]}))
    started = topology.tool("reassign-partitions", "--execute", "--reassignment-json-file", str(plan),
                            check=False)
    if started.returncode != 0:
        raise RuntimeError(f"reassignment to {replicas} refused: {started.stdout}{started.stderr}")
    deadline = time.time() + settle
    while time.time() < deadline:
        verified = topology.tool("reassign-partitions", "--verify", "--reassignment-json-file", str(plan),
                                 check=False)
        if "is completed." in verified.stdout:
            return
        time.sleep(0.5)
    raise TimeoutError(f"{topic}-{partition}: the move to {replicas} did not complete in {settle} s")


def replace_voter(topology, rng):
    """The quorum's membership changes under load: a voter, drawn (the
    quorum leader too), is removed with `kafka-metadata-quorum.sh
    remove-controller`, and the quorum runs on the others for the hold;
    healing adds a spare controller (one started with only
    `controller.quorum.bootstrap.servers`, waiting to be added) with
    `add-controller`, and stops the removed one for good: a removed id is
    never reused, so its machine is the one replaced. Skipped once no spare
    is left."""
    voters = topology.quorum_voters()
    by_id = {n.member_id: n for n in topology.coordinators()}
    spares = [n for n in topology.coordinators() if n.member_id not in voters]
    if not spares:
        raise LookupError("no spare controller left to add")
    leaving = by_id[rng.choice(voters)]
    via = next(by_id[v] for v in voters if v != leaving.member_id)
    topology.quorum_tool(via, "remove-controller", "--controller-id", str(leaving.member_id))
    spare = spares[0]

    def heal():
        # Idempotent: the nemesis retries a heal that raised.
        if spare.member_id not in topology.quorum_voters():
            topology.quorum_tool(via, "add-controller", "--controller-id", str(spare.member_id),
                                 "--controller-address", f"{spare.ip}:{spare.spec.coordinator_port}")
        if leaving in topology.nodes:
            leaving.kill()
            topology.retire(leaving)
    return heal


# Faults on the quorum as a whole: `fault(topology, rng) -> heal`.
QUORUM_FAULTS = {
    "replace-voter": replace_voter,
}

# Faults on a partition of the workload's topic (drawn when they begin):
# `fault(topology, topic, partition, rng) -> heal`.
PARTITION_FAULTS = {
    "move-partition": move_partition,
}

# Faults aimed at a role: (fault applied to the node, role it finds).
ROLE_FAULTS = {
    "kill-leader": ("kill", "partition-leader"),
    "kill-follower": ("kill", "follower"),
    "kill-quorum-leader": ("kill", "quorum-leader"),
    "pause-leader": ("pause", "partition-leader"),
    "pause-follower": ("pause", "follower"),
    "pause-quorum-leader": ("pause", "quorum-leader"),
    "isolate-clients-leader": ("isolate-clients", "partition-leader"),
}

FAULTS = {
    "kill": kill,
    "terminate": terminate,
    "pause": pause,
    "wipe": wipe,
    "isolate": isolate,
    "isolate-inbound": isolate_inbound,
    "isolate-clients": isolate_clients,
    "loss": loss,
    "slow": slow,
    "disk-full": disk_full,
    "kill-all": kill_all,
    "pause-all": pause_all,
    "rolling-restart": rolling_restart,
    "split": split,
}


# ---------------------------------------------------------------- the schedule


@dataclass
class Step:
    at: float      # seconds after the nemesis starts: the fault begins
    fault: str
    node: str
    hold: float    # seconds until it heals


def draw_schedule(seed, faults, nodes, duration=None, count=None, quiet=(2.0, 6.0), hold=(1.0, 5.0),
                  in_order=False):
    """Quiet, fault, heal, repeated until `duration` seconds are used or
    `count` faults are drawn (whichever is given; both: the first reached).
    `in_order`: the faults in the order given, round and round, instead of
    drawn (a smoke test that must see each one)."""
    if duration is None and count is None:
        raise ValueError("a schedule needs a duration or a count")
    rng = random.Random(seed)
    steps, t = [], 0.0
    while count is None or len(steps) < count:
        t += rng.uniform(*quiet)
        fault, node = rng.choice(faults), rng.choice(nodes)
        if in_order:
            fault = faults[len(steps) % len(faults)]
        if fault in ROLE_FAULTS:
            node = f"@{ROLE_FAULTS[fault][1]}"  # found when the fault begins
        elif fault in PARTITION_FAULTS:
            node = "@partition"
        elif fault in QUORUM_FAULTS:
            node = "@quorum"
        elif fault in ("kill-all", "pause-all", "rolling-restart"):
            node = "*"
        step = Step(round(t, 2), fault, node, round(rng.uniform(*hold), 2))
        if duration is not None and step.at + step.hold > duration:
            break
        steps.append(step)
        t = step.at + step.hold
    return steps


def format_schedule(steps):
    return "\n".join(f"  t+{s.at:7.2f}s  {s.fault:<16} {s.node:<10} hold {s.hold:.2f}s" for s in steps)


class Nemesis(threading.Thread):
    """Runs a schedule against a topology, logging to the fault log and to
    the history (process "nemesis": `fault` when it begins, `heal` once the
    node is whole again, e.g. a restarted broker listens)."""

    def __init__(self, topology, steps, fault_log_path, history_path, topic="chaos", partitions=1, seed=0):
        super().__init__(name="nemesis", daemon=True)
        self.topology = topology
        self.steps = steps
        self.topic = topic
        self.partitions = partitions
        self.rng = random.Random(seed)
        self.fault_log = open(fault_log_path, "a", buffering=1)
        self.history = open(history_path, "a", buffering=1)
        self.stopping = threading.Event()
        self.nodes = {n.name: n for n in topology.nodes}
        self.windows = []  # (fault, node, start, end, error)
        self.errors = []

    def log(self, event, step, **extra):
        now = time.time()
        record = {"time": now, "event": event, **asdict(step), **extra}
        self.fault_log.write(json.dumps(record) + "\n")
        op = {"time": now, "process": "nemesis", "type": "info", "f": event,
              "fault": step.fault, "node": step.node, **extra}
        self.history.write(json.dumps(op) + "\n")
        return now

    def run(self):
        t0 = time.time()
        for step in self.steps:
            if self.stopping.wait(max(0.0, t0 + step.at - time.time())):
                break
            fault, target = FAULTS.get(step.fault), {}
            try:
                if step.fault in PARTITION_FAULTS:
                    partition = self.rng.randrange(self.partitions)
                    fault = functools.partial(PARTITION_FAULTS[step.fault], topic=self.topic,
                                              partition=partition, rng=self.rng)
                    node = None
                    target = {"target": f"{self.topic}-{partition}"}
                elif step.fault in QUORUM_FAULTS:
                    fault = functools.partial(QUORUM_FAULTS[step.fault], rng=self.rng)
                    node = None
                    target = {"target": "quorum"}
                elif step.fault in ROLE_FAULTS:
                    base, role = ROLE_FAULTS[step.fault]
                    fault = FAULTS[base]
                    node = self.topology.resolve(role, self.rng, self.topic, self.partitions)
                    target = {"target": node.name}
                elif step.node == "*":  # the whole topology (kill-all, pause-all, ...)
                    node = self.topology.nodes[0]
                else:
                    node = self.nodes[step.node]
                    if node not in self.topology.nodes:
                        raise LookupError(f"{node.name} was retired from the topology")
            except Exception as e:  # noqa: BLE001 - no such role now (e.g. no leader): skipped
                self.errors.append(f"{step.fault}: finding its node: {e}")
                self.log("fault", step, error=f"target not found: {e}")
                self.log("heal", step, error=f"target not found: {e}")
                continue
            start = self.log("fault", step, **target)
            try:
                heal = fault(self.topology) if node is None else fault(self.topology, node)
            except Exception as e:  # noqa: BLE001 - logged; the run goes on, unhealed nothing
                self.errors.append(f"{step.fault} on {target.get('target') or node.name}: {e}")
                self.log("heal", step, error=f"inject failed: {e}", **target)
                continue
            self.stopping.wait(step.hold)
            error = self.heal(heal, step)
            end = self.log("heal", step, **target, **({"error": error} if error else {}))
            self.windows.append((step.fault, target.get("target", step.node), start, end, error))

    def heal(self, heal, step, attempts=5):
        """Heals, retrying: a restart can fail while the port is still held."""
        for attempt in range(attempts):
            try:
                heal()
                return None
            except Exception as e:  # noqa: BLE001
                error = f"heal attempt {attempt + 1}: {e}"
                self.errors.append(f"{step.fault} on {step.node}: {error}")
                time.sleep(1)
        return error

    def stop(self):
        self.stopping.set()
        self.join()
