#!/usr/bin/env bash
# The deterministic simulation of the coordinator quorum (issue 13), for a
# longer sweep than the fixed budget `cargo test` runs (24 seeds on three
# members, 8 on five). Every seed runs the real quorum code on turmoil's
# simulated network and disk under a seeded nemesis and checks raft's
# guarantees; a failing seed prints SEED=... and the command that replays it.
#
#   scripts/simulate.sh --seeds 500                  # seeds 0..499, three members
#   scripts/simulate.sh --seeds 100 --members 5 --first 1000
#   scripts/simulate.sh --replay 42 [--members 5]    # one seed, with its faults
#
# --replication: the simulation of partition replication (issue 14) instead:
# a controller and three replicas running the real replication code under
# crashes that lose unsynced records, partitions and message loss.
#   scripts/simulate.sh --replication --seeds 1000 [--first 2000]
#   scripts/simulate.sh --replication --replay 1009
# Exit status: 0 every seed kept every invariant, 101 a seed did not.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=100 first=0 members=3 replay= replication=
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds=$2; shift 2 ;;
    --first) first=$2; shift 2 ;;
    --members) members=$2; shift 2 ;;
    --replay) replay=$2; shift 2 ;;
    --replication) replication=1; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "simulate.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ -n "$replication" ]; then
  if [ -n "$replay" ]; then
    SIMULATION_SEED=$replay exec cargo test --lib \
      replication::simulation::tests::replay -- --exact --nocapture
  fi
  start=$(date +%s)
  SIMULATION_SEEDS=$seeds SIMULATION_FIRST_SEED=$first cargo test --lib \
    replication::simulation::tests::three_replicas_keep_kafkas_guarantees_under_faults \
    -- --exact --nocapture
  echo "simulate.sh: $seeds replication seeds from $first passed in $(( $(date +%s) - start )) s"
  exit 0
fi
case "$members" in
  3) sweep=three_members_keep_raft_guarantees_under_faults ;;
  5) sweep=five_members_keep_raft_guarantees_under_faults ;;
  *) echo "simulate.sh: --members is 3 or 5" >&2; exit 2 ;;
esac
if [ -n "$replay" ]; then
  SIMULATION_SEED=$replay SIMULATION_MEMBERS=$members exec cargo test --lib \
    cluster::raft::simulation::tests::replay -- --exact --nocapture
fi
start=$(date +%s)
SIMULATION_SEEDS=$seeds SIMULATION_FIRST_SEED=$first cargo test --lib \
  "cluster::raft::simulation::tests::$sweep" -- --exact --nocapture
echo "simulate.sh: $seeds seeds from $first on $members members passed in $(( $(date +%s) - start )) s"
