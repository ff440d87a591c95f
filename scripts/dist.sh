#!/usr/bin/env bash
# Lays out a Kafka-style distribution of gregor:
#   DIR/bin/gregor            the one binary
#   DIR/bin/<kafka script>    symlinks to it (kafka-topics.sh, ...)
#   DIR/config/               server.properties (+ coordinator/zookeeper
#                             properties when the repository has them)
# Usage: scripts/dist.sh DIR
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dest=$1
root=$(cd "$(dirname "$0")/.." && pwd)

cargo build --release --manifest-path "$root/Cargo.toml"
target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')

mkdir -p "$dest/bin" "$dest/config"
install -m 0755 "${target_dir:-$root/target}/release/gregor" "$dest/bin/gregor"

scripts=(
    kafka-server-start.sh
    kafka-server-stop.sh
    kafka-topics.sh
    kafka-console-producer.sh
    kafka-console-consumer.sh
    kafka-consumer-groups.sh
    kafka-delete-records.sh
    kafka-leader-election.sh
    kafka-reassign-partitions.sh
    kafka-configs.sh
    zookeeper-server-start.sh
    zookeeper-server-stop.sh
)
for script in "${scripts[@]}"; do
    ln -sfn gregor "$dest/bin/$script"
done

cp "$root/config/server.properties" "$dest/config/"
for optional in coordinator.properties zookeeper.properties; do
    if [ -f "$root/config/$optional" ]; then
        cp "$root/config/$optional" "$dest/config/"
    fi
done

echo "gregor distribution in $dest: bin/ (gregor + ${#scripts[@]} Kafka script links), config/"
