#!/usr/bin/env bash
# Opens a gregor server to other machines with ufw, as the Kafka tutorial's
# server section does (`ufw allow 9092`), printing each command first.
#
#   scripts/firewall.sh --dry-run                    # print, change nothing
#   scripts/firewall.sh                              # ufw allow 9092/tcp
#   scripts/firewall.sh --port 9093                  # another broker port
#   scripts/firewall.sh --coordinator-from 10.0.0.0/24
#       # also let brokers in that subnet reach the coordinator on 2181
#
# The coordinator port (2181) is NOT opened to the world: it has no
# authentication, and anyone who reaches it can create and delete topics
# and register brokers. Only brokers (and admins running
# `kafka-topics.sh --zookeeper`) need it; clients only need 9092.
#
# Clients also need the broker to *advertise* an address they can reach:
# set advertised.listeners=PLAINTEXT://<server ip or DNS name>:9092 (or
# KAFKA_ADVERTISED_LISTENERS in a container). See docs/containers.md.
#
# Docker-published ports bypass ufw: Docker inserts its own iptables rules
# ahead of ufw's, so `docker run -p 9092:9092` is reachable from everywhere
# whatever ufw says. To filter them, add rules to the DOCKER-USER chain
# (this script prints an example with --docker).
set -euo pipefail

DRY_RUN=0
PORT=9092
COORDINATOR_FROM=""
DOCKER=0
EXTERNAL_IF=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run|-n) DRY_RUN=1; shift ;;
    --port) PORT=$2; shift 2 ;;
    --coordinator-from) COORDINATOR_FROM=$2; shift 2 ;;
    --docker) DOCKER=1; shift ;;
    --external-interface) EXTERNAL_IF=$2; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "firewall.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

run() {
  echo "+ $*"
  if [ "$DRY_RUN" = 0 ]; then
    "$@"
  fi
}

case "$PORT" in
  ''|*[!0-9]*) echo "firewall.sh: --port must be a number, got '$PORT'" >&2; exit 2 ;;
esac

if [ "$DRY_RUN" = 0 ]; then
  if ! command -v ufw >/dev/null; then
    echo "firewall.sh: ufw is not installed (apt-get install ufw), or use --dry-run to see the rules" >&2
    exit 1
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "firewall.sh: ufw needs root; run with sudo, or --dry-run" >&2
    exit 1
  fi
fi

echo "# Kafka clients on other machines connect to the broker on $PORT/tcp."
run ufw allow "$PORT/tcp"

if [ -n "$COORDINATOR_FROM" ]; then
  echo "# Brokers in $COORDINATOR_FROM register with the coordinator on 2181/tcp."
  run ufw allow from "$COORDINATOR_FROM" to any port 2181 proto tcp
else
  echo "# Not opening 2181 (coordinator): it is unauthenticated and only brokers need it."
  echo "# To let brokers on another subnet reach it: $0 --coordinator-from 10.0.0.0/24"
fi

if [ "$DOCKER" = 1 ]; then
  IF=${EXTERNAL_IF:-$(ip route show default 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }')}
  IF=${IF:-eth0}
  echo "# Docker-published ports bypass ufw. In DOCKER-USER, drop new connections"
  echo "# from $IF to the coordinator's published port 2181 (port inside the container):"
  run iptables -I DOCKER-USER -i "$IF" -p tcp -m conntrack --ctorigdstport 2181 --ctdir ORIGINAL -j DROP
  if [ -n "$COORDINATOR_FROM" ]; then
    # -I puts this rule above the DROP just inserted.
    run iptables -I DOCKER-USER -i "$IF" -s "$COORDINATOR_FROM" -p tcp -m conntrack --ctorigdstport 2181 --ctdir ORIGINAL -j RETURN
  fi
fi

if [ "$DRY_RUN" = 1 ]; then
  echo "# dry run: nothing was changed"
else
  run ufw status
fi
