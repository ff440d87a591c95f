#!/usr/bin/env bash
# The Kafka tutorial's container section, step by step, with gregor's images
# in place of jplock/zookeeper and ches/kafka. Each command is printed as it
# runs; the script exits non-zero if any step fails or the consumer does not
# print exactly the lines the producer sent.
#
#   scripts/walkthrough-docker.sh             # needs gregor/broker, gregor/coordinator
#
# Where it differs from the tutorial, and why:
# - nothing on the broker's command line names the coordinator: like ches/kafka,
#   gregor reads the link's ZOOKEEPER_PORT_2181_TCP_ADDR (EXPLICIT=1 adds
#   `-e KAFKA_ZOOKEEPER_CONNECT=zookeeper:2181` instead, for comparison);
# - it waits for the broker's health check before the first tool runs (the
#   tutorial's reader waits by looking);
# - the console consumer gets `--max-messages N` so it ends by itself;
# - the producer's lines come from a pipe instead of the keyboard.
# Then the tutorial's single-container case: `docker run -p 9092:9092` with
# KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://localhost:9092, reached by kcat from
# the host (skipped if kcat is missing).
#
# Environment: ZK_NAME, KAFKA_NAME (container names, default zookeeper and
# kafka), TOPIC (default test), HOST_PORT (default 9092), TAG (default
# latest), KEEP=1 to leave the containers running.
set -euo pipefail

ZK_NAME=${ZK_NAME:-zookeeper}
KAFKA_NAME=${KAFKA_NAME:-kafka}
LONE_NAME=${LONE_NAME:-${KAFKA_NAME}-alone}
TOPIC=${TOPIC:-test}
HOST_PORT=${HOST_PORT:-9092}
TAG=${TAG:-latest}
BROKER=gregor/broker:$TAG
COORDINATOR=gregor/coordinator:$TAG
LINES=("This is a message" "This is another message" "{\"json\": true}")

step() { printf '\n$ %s\n' "$*" >&2; }
fail() { echo "walkthrough: FAILED: $*" >&2; exit 1; }

cleanup() {
  if [ "${KEEP:-0}" != 1 ]; then
    docker rm -f -v "$ZK_NAME" "$KAFKA_NAME" "$LONE_NAME" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
cleanup

wait_healthy() {
  local name=$1 status=""
  for _ in $(seq 1 60); do
    status=$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$name" 2>/dev/null || true)
    [ "$status" = healthy ] && return 0
    if [ "$(docker inspect --format '{{.State.Running}}' "$name" 2>/dev/null)" != true ]; then
      docker logs "$name" >&2 || true
      fail "$name is not running"
    fi
    sleep 1
  done
  docker logs "$name" >&2 || true
  fail "$name did not become healthy (last status: ${status:-none})"
}

# --- Multiple containers, linked ------------------------------------------
step docker run -d --name "$ZK_NAME" "$COORDINATOR"
docker run -d --name "$ZK_NAME" "$COORDINATOR" >/dev/null

ZK_ENV=()
[ "${EXPLICIT:-0}" = 1 ] && ZK_ENV=(-e KAFKA_ZOOKEEPER_CONNECT=zookeeper:2181)
step docker run -d --name "$KAFKA_NAME" --link "$ZK_NAME":zookeeper "${ZK_ENV[@]}" "$BROKER"
docker run -d --name "$KAFKA_NAME" --link "$ZK_NAME":zookeeper "${ZK_ENV[@]}" "$BROKER" >/dev/null

step "ZK_IP=\$(docker inspect --format '{{ .NetworkSettings.IPAddress }}' $ZK_NAME)"
ZK_IP=$(docker inspect --format '{{ .NetworkSettings.IPAddress }}' "$ZK_NAME")
step "KAFKA_IP=\$(docker inspect --format '{{ .NetworkSettings.IPAddress }}' $KAFKA_NAME)"
KAFKA_IP=$(docker inspect --format '{{ .NetworkSettings.IPAddress }}' "$KAFKA_NAME")
echo "ZK_IP=$ZK_IP KAFKA_IP=$KAFKA_IP" >&2
[ -n "$ZK_IP" ] && [ -n "$KAFKA_IP" ] || fail "no container IP addresses"

wait_healthy "$ZK_NAME"
wait_healthy "$KAFKA_NAME"

step docker run --rm "$BROKER" kafka-topics.sh --create --topic "$TOPIC" --replication-factor 1 --partitions 1 --zookeeper "$ZK_IP:2181"
docker run --rm "$BROKER" kafka-topics.sh --create --topic "$TOPIC" \
  --replication-factor 1 --partitions 1 --zookeeper "$ZK_IP:2181" \
  || fail "kafka-topics.sh --create"

step docker run --rm "$BROKER" kafka-topics.sh --list --zookeeper "$ZK_IP:2181"
listed=$(docker run --rm "$BROKER" kafka-topics.sh --list --zookeeper "$ZK_IP:2181") \
  || fail "kafka-topics.sh --list"
echo "$listed"
grep -qx "$TOPIC" <<<"$listed" || fail "--list did not show $TOPIC"

step docker run --rm --interactive "$BROKER" kafka-console-producer.sh --topic "$TOPIC" --broker-list "$KAFKA_IP:9092"
printf '%s\n' "${LINES[@]}" >&2
printf '%s\n' "${LINES[@]}" \
  | docker run --rm --interactive "$BROKER" kafka-console-producer.sh \
      --topic "$TOPIC" --broker-list "$KAFKA_IP:9092" \
  || fail "kafka-console-producer.sh"

step docker run --rm "$BROKER" kafka-console-consumer.sh --topic "$TOPIC" --from-beginning --zookeeper "$ZK_IP:2181" --max-messages ${#LINES[@]}
consumed=$(timeout 60 docker run --rm "$BROKER" kafka-console-consumer.sh \
  --topic "$TOPIC" --from-beginning --zookeeper "$ZK_IP:2181" --max-messages ${#LINES[@]}) \
  || fail "kafka-console-consumer.sh"
echo "$consumed"
expected=$(printf '%s\n' "${LINES[@]}")
[ "$consumed" = "$expected" ] || fail "the consumer printed something else than was produced"
echo "walkthrough: linked containers OK (${#LINES[@]} messages through $TOPIC)" >&2

# --- One container, port published to the host -----------------------------
if command -v kcat >/dev/null; then
  step docker run -d --name "$LONE_NAME" -p "$HOST_PORT:9092" -e KAFKA_ADVERTISED_LISTENERS="PLAINTEXT://localhost:$HOST_PORT" "$BROKER"
  docker run -d --name "$LONE_NAME" -p "$HOST_PORT:9092" \
    -e KAFKA_ADVERTISED_LISTENERS="PLAINTEXT://localhost:$HOST_PORT" "$BROKER" >/dev/null
  wait_healthy "$LONE_NAME"
  step "echo 'from the host' | kcat -b localhost:$HOST_PORT -P -t $TOPIC"
  echo 'from the host' | kcat -b "localhost:$HOST_PORT" -P -t "$TOPIC" || fail "kcat -P"
  step kcat -b "localhost:$HOST_PORT" -C -t "$TOPIC" -e
  got=$(timeout 30 kcat -b "localhost:$HOST_PORT" -C -t "$TOPIC" -e) || fail "kcat -C"
  echo "$got"
  [ "$got" = "from the host" ] || fail "kcat read '$got'"
  echo "walkthrough: published port OK (localhost:$HOST_PORT)" >&2
else
  echo "walkthrough: kcat not found; skipped the published-port case" >&2
fi
echo "walkthrough: all steps passed" >&2
