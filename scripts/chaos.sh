#!/usr/bin/env bash
# The fault-injection harness: runs gregor under a seeded rotation of faults
# while idempotent acks=all producers (confluent-kafka and kafka-python),
# assign- and subscribe-mode consumers and a ListOffsets prober log every
# operation, then checks the history (tests/chaos/checker.py) and writes a
# run directory with history.jsonl, faults.jsonl, report.md and plot.png.
#
#   scripts/chaos.sh                                   # processes, 60 s, all their faults
#   scripts/chaos.sh --topology processes --duration 120 --seed 7 --faults kill,pause
#   scripts/chaos.sh --faults kill --count 20          # exactly 20 kill -9s
#   scripts/chaos.sh --topology compose --faults isolate,loss,slow,disk-full
#   scripts/chaos.sh --topology compose --nodes nodes.json   # another node list
#   scripts/chaos.sh --topology compose --nodes tests/chaos/nodes/zk-cluster.json \
#     --replication-factor 1 --faults kill-leader,kill-quorum-leader,pause-leader,split
#
# processes: target/debug/gregor (or GREGOR_BIN) on loopback; faults kill
#   (kill -9, restart), terminate (SIGTERM, restart), pause (SIGSTOP/SIGCONT).
# compose: the gregor/broker image (scripts/build-images.sh) on a private
#   subnet, as root; faults also isolate, isolate-inbound (iptables in the
#   container's network namespace), loss, slow (tc tbf), disk-full; and,
#   aimed at a role of a multi-node cluster, kill-leader, kill-follower,
#   kill-quorum-leader, pause-leader, pause-follower, pause-quorum-leader
#   (the node is found when the fault begins), kill-all (every node, then
#   coordinators restart first), pause-all, rolling-restart, split (one
#   machine from the others) and isolate-clients[-leader] (a node cut from
#   the clients only); and membership changes: move-partition (a replica
#   moved off a partition with kafka-reassign-partitions.sh and back) and
#   replace-voter (a quorum voter removed, a spare controller added; with
#   tests/chaos/nodes/kraft-cluster.json, which has two spares).
# Exit status: 0 every check passed, 1 an anomaly, 2 a harness error.
# `python tests/chaos/run.py --help` lists every option.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || { echo "chaos.sh: no Python venv (run scripts/test.sh once, or set VENV)" >&2; exit 2; }
if [ -z "${GREGOR_BIN:-}" ] && [ ! -x target/debug/gregor ]; then
  cargo build --bin gregor
fi
exec "$VENV/bin/python" tests/chaos/run.py "$@"
