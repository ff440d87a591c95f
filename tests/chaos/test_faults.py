"""The nemesis without a cluster: schedules, role-targeted faults and the
majority/minority split, against a fake topology that records what it was
asked to do."""
import ipaddress
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import faults  # noqa: E402
from topology import ComposeTopology, load_node_specs  # noqa: E402


def test_a_seed_draws_the_same_schedule_as_before_role_faults_existed():
    steps = faults.draw_schedule(7, ["kill", "pause", "isolate"], ["n1", "n2", "n3"], count=5)
    assert [(s.at, s.fault, s.node, s.hold) for s in steps] == [
        (3.3, "kill", "n2", 3.6), (9.19, "isolate", "n1", 2.46), (13.88, "isolate", "n1", 1.15),
        (18.76, "kill", "n1", 1.36), (23.82, "isolate", "n1", 4.79)]


def test_role_faults_are_aimed_when_they_begin_and_in_order_cycles():
    names = ["kill-leader", "pause-quorum-leader", "kill-all", "split"]
    steps = faults.draw_schedule(3, names, ["zk1", "broker1"], count=6, in_order=True)
    assert [s.fault for s in steps] == names + names[:2]
    assert [s.node for s in steps[:3]] == ["@partition-leader", "@quorum-leader", "*"]
    assert steps[3].node in {"zk1", "broker1"}


class FakeNode:
    def __init__(self, node):
        self.real = node
        self.name, self.ip, self.host, self.spec = node.name, node.ip, node.host, node.spec
        self.calls = []

    def in_netns(self, *cmd, check=True):
        self.calls.append(cmd)

    def kill(self):
        self.calls.append("kill")

    def start(self):
        self.calls.append("start")


def zk_cluster(tmp_path):
    topology = ComposeTopology(tmp_path, nodes=load_node_specs(HERE / "nodes" / "zk-cluster.json"))
    topology.nodes = [FakeNode(n) for n in topology.nodes]
    return topology


def test_a_split_cuts_one_machine_from_the_others_both_ways(tmp_path):
    topology = zk_cluster(tmp_path)
    by_name = {n.name: n for n in topology.nodes}
    heal = faults.split(topology, by_name["broker2"])
    others = {n.ip for n in topology.nodes if n.host != "m2"}
    for name in ("zk2", "broker2"):
        inserted = [c for c in by_name[name].calls if c[:2] == ("iptables", "-I")]
        assert {c[4] for c in inserted} == others
        assert {c[2] for c in inserted} == {"INPUT", "OUTPUT"}
        assert all(ipaddress.ip_address(c[4]) in topology.subnet for c in inserted)
    assert not by_name["zk1"].calls and not by_name["broker3"].calls
    heal()
    for name in ("zk2", "broker2"):
        removed = [c for c in by_name[name].calls if c[:2] == ("iptables", "-D")]
        assert len(removed) == 2 * len(others)


def test_kill_all_restarts_coordinators_before_brokers(tmp_path):
    topology = zk_cluster(tmp_path)
    order = []
    for node in topology.nodes:
        node.start = lambda node=node: order.append(node.name)
    heal = faults.kill_all(topology, topology.nodes[0])
    assert all(n.calls == ["kill"] for n in topology.nodes)
    heal()
    assert order == ["zk1", "zk2", "zk3", "broker1", "broker2", "broker3"]


def test_the_nemesis_logs_the_node_a_role_fault_found(tmp_path):
    topology = zk_cluster(tmp_path)
    leader = next(n for n in topology.nodes if n.name == "zk3")
    topology.resolve = lambda role, rng, topic, partitions: leader
    leader.pause = lambda: leader.calls.append("pause")
    leader.resume = lambda: leader.calls.append("resume")
    step = faults.Step(0.0, "pause-quorum-leader", "@quorum-leader", 0.01)
    nemesis = faults.Nemesis(topology, [step], tmp_path / "faults.jsonl", tmp_path / "nemesis.jsonl")
    nemesis.run()
    assert leader.calls == ["pause", "resume"]
    assert nemesis.windows[0][:2] == ("pause-quorum-leader", "zk3")
    assert '"target": "zk3"' in (tmp_path / "faults.jsonl").read_text()
    assert not nemesis.errors


def test_a_role_that_cannot_be_found_is_skipped_and_reported(tmp_path):
    topology = zk_cluster(tmp_path)

    def nobody(role, rng, topic, partitions):
        raise LookupError("no coordinator names a quorum leader")
    topology.resolve = nobody
    step = faults.Step(0.0, "kill-quorum-leader", "@quorum-leader", 0.01)
    nemesis = faults.Nemesis(topology, [step], tmp_path / "faults.jsonl", tmp_path / "nemesis.jsonl")
    nemesis.run()
    assert not nemesis.windows and "no coordinator" in nemesis.errors[0]
    assert all(n.calls == [] for n in topology.nodes)


def test_pause_all_pauses_every_container_and_resumes_them(tmp_path):
    topology = zk_cluster(tmp_path)
    for node in topology.nodes:
        node.pause = lambda node=node: node.calls.append("pause")
        node.resume = lambda node=node: node.calls.append("resume")
    heal = faults.pause_all(topology, topology.nodes[0])
    assert all(n.calls == ["pause"] for n in topology.nodes)
    heal()
    assert all(n.calls == ["pause", "resume"] for n in topology.nodes)


def test_isolate_clients_cuts_the_node_from_the_gateway_only(tmp_path):
    topology = zk_cluster(tmp_path)
    broker = next(n for n in topology.nodes if n.name == "broker2")
    heal = faults.isolate_clients(topology, broker)
    inserted = [c for c in broker.calls if c[:2] == ("iptables", "-I")]
    assert [(c[2], c[4]) for c in inserted] == [("INPUT", topology.gateway), ("OUTPUT", topology.gateway)]
    heal()
    assert len([c for c in broker.calls if c[:2] == ("iptables", "-D")]) == 2
    assert faults.ROLE_FAULTS["isolate-clients-leader"] == ("isolate-clients", "partition-leader")


def test_a_rolling_restart_takes_one_node_at_a_time_coordinators_first(tmp_path):
    topology = zk_cluster(tmp_path)
    events = []
    for node in topology.nodes:
        node.terminate = lambda node=node: events.append(("stop", node.name))
        node.start = lambda node=node: events.append(("start", node.name))
    faults.rolling_restart(topology, topology.nodes[0])()
    order = ["zk1", "zk2", "zk3", "broker1", "broker2", "broker3"]
    assert events == [(verb, name) for name in order for verb in ("stop", "start")]


def fake_reassignments(topology, replicas, brokers=(1, 2, 3)):
    """A cluster whose partition 0 has `replicas`: the moves asked of
    kafka-reassign-partitions.sh are recorded and complete at once."""
    moves = []
    topology.partition_replicas = lambda topic, partition: (replicas[0], list(replicas),
                                                            {b: object() for b in brokers})

    class Done:
        returncode, stdout, stderr = 0, "Reassignment of partition chaos-0 is completed.\n", ""

    def tool(name, *args, check=True, timeout=60):
        if "--execute" in args:
            plan = json.loads(Path(args[args.index("--reassignment-json-file") + 1]).read_text())
            moves.append(plan["partitions"][0]["replicas"])
        return Done()
    topology.tool = tool
    return moves


def test_a_partition_move_drops_one_replica_and_healing_restores_the_set(tmp_path):
    topology = zk_cluster(tmp_path)
    moves = fake_reassignments(topology, [2, 3, 1])
    rng = random.Random(5)
    heal = faults.move_partition(topology, "chaos", 0, rng)
    assert len(moves) == 1 and len(moves[0]) == 2 and set(moves[0]) < {1, 2, 3}
    heal()
    assert moves[1] == [2, 3, 1]


def test_a_single_replica_moves_to_a_broker_without_a_copy(tmp_path):
    topology = zk_cluster(tmp_path)
    moves = fake_reassignments(topology, [2])
    heal = faults.move_partition(topology, "chaos", 0, random.Random(1))
    assert moves == [[1]]
    heal()
    assert moves == [[1], [2]]


def test_the_nemesis_aims_a_partition_fault_at_a_partition_of_the_topic(tmp_path):
    topology = zk_cluster(tmp_path)
    moves = fake_reassignments(topology, [1, 2, 3])
    step = faults.Step(0.0, "move-partition", "@partition", 0.01)
    nemesis = faults.Nemesis(topology, [step], tmp_path / "faults.jsonl", tmp_path / "nemesis.jsonl",
                             topic="chaos", partitions=1)
    nemesis.run()
    assert not nemesis.errors
    assert nemesis.windows[0][:2] == ("move-partition", "chaos-0")
    assert len(moves) == 2 and moves[1] == [1, 2, 3]


def kraft_cluster(tmp_path):
    topology = ComposeTopology(tmp_path, nodes=load_node_specs(HERE / "nodes" / "kraft-cluster.json"))
    topology.nodes = [FakeNode(n) for n in topology.nodes]
    for node in topology.nodes:
        node.member_id = node.real.member_id
    return topology


def test_replacing_a_voter_removes_one_adds_a_spare_and_retires_the_removed(tmp_path):
    topology = kraft_cluster(tmp_path)
    voters, calls = [1, 2, 3], []
    topology.quorum_voters = lambda: list(voters)

    def quorum_tool(via, command, *args):
        calls.append((via.name, command, args))
        member = int(args[1])
        voters.remove(member) if command == "remove-controller" else voters.append(member)
    topology.quorum_tool = quorum_tool
    heal = faults.replace_voter(topology, random.Random(3))
    (via, command, (_, removed)), = calls
    assert command == "remove-controller" and int(removed) in (1, 2, 3) and via != f"c{removed}"
    heal()
    heal()  # a retried heal changes nothing twice
    spare = next(n for n in topology.nodes if n.name == "c4")
    assert calls[1][1:] == ("add-controller", ("--controller-id", "4", "--controller-address", f"{spare.ip}:9093"))
    assert len(calls) == 2 and sorted(voters) == sorted({1, 2, 3, 4} - {int(removed)})
    assert [n.name for n in topology.retired] == [f"c{removed}"] and topology.retired[0].calls == ["kill"]
    # the next replacement takes the other spare; then there is none
    faults.replace_voter(topology, random.Random(1))()
    assert 5 in voters and len(topology.retired) == 2
    try:
        faults.replace_voter(topology, random.Random(1))
        raise AssertionError("replaced a voter with no spare left")
    except LookupError as e:
        assert "no spare" in str(e)
