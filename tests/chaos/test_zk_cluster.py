"""The chaos harness against the tutorial's cluster shape in containers
(tests/chaos/nodes/zk-cluster.json): three coordinators in a raft quorum
(ZOO_MY_ID / ZOO_SERVERS) and three brokers, one per machine, on the
harness's pinned subnet with CPU and memory limits and a loop disk each.

The smoke: idempotent acks=all producers on confluent-kafka and
kafka-python against a topic with three replicas and
min.insync.replicas=2, while kill -9 and pause hit the partition leader, a
follower and the quorum leader, and a majority/minority split cuts one
machine off; every check passes.

The control: the same cluster with acks=1 producers and one machine cut
off from the others (not from the clients) for longer than the broker
lease. Its broker keeps acknowledging acks=1 writes its followers never
get, the controller elects a follower, and the old leader truncates when it
returns: the checker must report lost acknowledged writes (and no consumer
may have read them: they never passed the high watermark). Kafka's
semantics allow exactly this for acks=1, so this is how the judge is known
to catch a loss.

Needs root, docker-compose and the images (scripts/build-images.sh); skips
without them. About two minutes each.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402

NODES = HERE / "nodes" / "zk-cluster.json"
IMAGES = ("gregor/broker:latest", "gregor/coordinator:latest")


def cluster_ready():
    if os.geteuid() != 0:
        return "needs root (iptables in the containers' namespaces, loop disks)"
    if not shutil.which("docker-compose"):
        return "needs docker-compose"
    try:
        if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode != 0:
            return "needs a Docker engine"
    except (OSError, subprocess.TimeoutExpired):
        return "needs a Docker engine"
    for image in IMAGES:
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode != 0:
            return f"needs {image} (scripts/build-images.sh)"
    return None


pytestmark = pytest.mark.skipif(cluster_ready() is not None, reason=str(cluster_ready()))

SMOKE_FAULTS = ["kill-leader", "pause-quorum-leader", "split", "kill-quorum-leader",
                "pause-leader", "kill-follower"]


def test_three_node_smoke_kill_pause_and_split_lose_nothing(tmp_path):
    code = run.run(run.parse([
        "--topology", "compose", "--nodes", str(NODES), "--out", str(tmp_path),
        "--faults", ",".join(SMOKE_FAULTS), "--in-order", "--count", str(len(SMOKE_FAULTS)),
        "--seed", "13", "--quiet-min", "2", "--quiet-max", "4", "--hold-min", "2", "--hold-max", "6",
        "--tail", "10", "--rate", "30", "--partitions", "3", "--replication-factor", "3",
        "--topic-config", "min.insync.replicas=2", "--liveness", "45"]))
    results = json.loads((tmp_path / "results.json").read_text())
    report = (tmp_path / "report.md").read_text()
    assert code == 0, report
    assert [f["fault"] for f in results["faults"]] == SMOKE_FAULTS, report
    assert not results["meta"]["nemesis_errors"], results["meta"]["nemesis_errors"]
    assert results["meta"]["final_read"]["covered_every_acknowledged_offset"], report
    assert results["operations"]["send ok"] > 500, results["operations"]
    for name in ("no_lost_writes", "no_duplicates", "producer_order", "assign_polls_contiguous"):
        assert results["checks"][name]["checked"] > 0, name
    # The role-targeted faults found their nodes: brokers for the partition
    # roles, coordinators for the quorum leader.
    targets = {}
    for line in open(tmp_path / "faults.jsonl"):
        event = json.loads(line)
        if event["event"] == "fault" and "target" in event:
            targets[event["fault"]] = event["target"]
    assert targets["kill-leader"].startswith("broker"), targets
    assert targets["kill-follower"].startswith("broker"), targets
    assert targets["kill-quorum-leader"].startswith("zk"), targets
    assert targets["pause-quorum-leader"].startswith("zk"), targets


def test_acks1_control_run_loses_writes_and_the_checker_says_so(tmp_path):
    code = run.run(run.parse([
        "--topology", "compose", "--nodes", str(NODES), "--out", str(tmp_path),
        "--faults", "split", "--count", "1", "--seed", "23", "--hold-min", "14", "--hold-max", "15",
        "--tail", "10", "--rate", "100", "--partitions", "3", "--replication-factor", "3",
        "--topic-config", "min.insync.replicas=2", "--acks", "1", "--no-idempotence",
        "--liveness", "45"]))
    results = json.loads((tmp_path / "results.json").read_text())
    report = (tmp_path / "report.md").read_text()
    assert code == 1, report
    assert not results["meta"]["nemesis_errors"], results["meta"]["nemesis_errors"]
    assert results["checks"]["no_lost_writes"]["anomalies"] > 0, report
    # Lost, but never shown: consumers read only below the high watermark.
    assert results["checks"]["no_vanished_reads"]["anomalies"] == 0, report
    assert results["checks"]["no_vanished_reads"]["checked"] > 0, report
