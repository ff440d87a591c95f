#!/usr/bin/env bash
# Opens a gregor server to other machines with ufw, as the Kafka tutorial's
# server section does (`ufw allow 9092`), printing each command first —
# but only its secured listeners.
#
#   scripts/firewall.sh --dry-run                # print, change nothing
#   scripts/firewall.sh                          # the listeners of config/server.properties
#   scripts/firewall.sh --config /etc/gregor/server.properties
#   scripts/firewall.sh --port 9093              # one port, named by hand
#   scripts/firewall.sh --coordinator-from 10.0.0.0/24
#       # also let brokers in that subnet reach the coordinator's TLS port 2182
#
# With a configuration file, each listener's protocol (from
# listener.security.protocol.map) decides: SASL_SSL and SSL listeners are
# opened; PLAINTEXT and SASL_PLAINTEXT ones are not (anyone could read the
# traffic, and on PLAINTEXT do anything), unless --insecure says so
# knowingly; listeners bound to loopback need no rule. The README's
# "A server reached from other machines" sets up a SASL_SSL listener with
# `gregor security init`.
#
# The coordinator is never opened to the world. Its mutual-TLS port
# (secureClientPort, 2182) is opened only to the brokers' subnet with
# --coordinator-from; its plaintext port (2181) is never opened.
#
# Clients also need the broker to *advertise* an address they can reach:
# set advertised.listeners=EXTERNAL://<server ip or DNS name>:9093 (or
# KAFKA_ADVERTISED_LISTENERS in a container). See docs/containers.md.
#
# Docker-published ports bypass ufw: Docker inserts its own iptables rules
# ahead of ufw's, so `docker run -p 9092:9092` is reachable from everywhere
# whatever ufw says. To filter them, add rules to the DOCKER-USER chain
# (this script prints an example with --docker).
set -euo pipefail

DRY_RUN=0
CONFIG=""
PORTS=()
INSECURE=0
COORDINATOR_FROM=""
COORDINATOR_PORT=2182
DOCKER=0
EXTERNAL_IF=""
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run|-n) DRY_RUN=1; shift ;;
    --config) CONFIG=$2; shift 2 ;;
    --port) PORTS+=("$2"); shift 2 ;;
    --insecure) INSECURE=1; shift ;;
    --coordinator-from) COORDINATOR_FROM=$2; shift 2 ;;
    --coordinator-port) COORDINATOR_PORT=$2; shift 2 ;;
    --docker) DOCKER=1; shift ;;
    --external-interface) EXTERNAL_IF=$2; shift 2 ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "firewall.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

run() {
  echo "+ $*"
  if [ "$DRY_RUN" = 0 ]; then
    "$@"
  fi
}

is_number() {
  case "$1" in ''|*[!0-9]*) return 1 ;; *) return 0 ;; esac
}

# The value of KEY in a Java properties file (last one wins, as in Kafka).
property() {
  sed -n "s/^[[:space:]]*$1[[:space:]]*[=:][[:space:]]*//p" "$CONFIG" | tail -n 1
}

# Prints "NAME PROTOCOL HOST PORT" per listener of $CONFIG.
listeners_of_config() {
  local listeners map entry name rest host port protocol
  listeners=$(property listeners)
  listeners=${listeners:-PLAINTEXT://:9092}
  map=$(property listener.security.protocol.map)
  IFS=',' read -ra entries <<< "$listeners"
  for entry in "${entries[@]}"; do
    entry=$(echo "$entry" | tr -d '[:space:]')
    name=${entry%%://*}
    rest=${entry#*://}
    host=${rest%:*}
    port=${rest##*:}
    protocol=$(echo ",$map," | tr -d '[:space:]' | sed -n "s/.*,$name:\([A-Za-z_]*\),.*/\1/Ip")
    # Without a map entry, Kafka takes the listener's name as its protocol.
    protocol=$(echo "${protocol:-$name}" | tr '[:lower:]' '[:upper:]')
    echo "$name $protocol ${host:-*} $port"
  done
}

if [ ${#PORTS[@]} -eq 0 ] && [ -z "$CONFIG" ]; then
  CONFIG=config/server.properties
fi
for port in "${PORTS[@]}" "$COORDINATOR_PORT"; do
  is_number "$port" || { echo "firewall.sh: ports must be numbers, got '$port'" >&2; exit 2; }
done

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

OPEN=("${PORTS[@]}")
if [ ${#PORTS[@]} -gt 0 ]; then
  echo "# Opening the port(s) named with --port; make sure their listeners use SASL_SSL or SSL."
fi
REFUSED=0
if [ -n "$CONFIG" ]; then
  [ -r "$CONFIG" ] || { echo "firewall.sh: cannot read $CONFIG (pass --config FILE or --port N)" >&2; exit 2; }
  while read -r name protocol host port; do
    case "$host" in
      127.*|localhost|'[::1]'|::1)
        echo "# $name ($protocol) on $host:$port is loopback only: no rule needed."
        continue ;;
    esac
    case "$protocol" in
      SASL_SSL|SSL)
        echo "# $name ($protocol): clients on other machines connect on $port/tcp."
        OPEN+=("$port") ;;
      *)
        if [ "$INSECURE" = 1 ]; then
          echo "# $name ($protocol) on $port: opened because of --insecure; anyone who reaches it is unauthenticated or unencrypted."
          OPEN+=("$port")
        else
          echo "# NOT opening $name ($protocol) on $port: it is not authenticated and encrypted."
          echo "#   Secure it first (README: A server reached from other machines), or pass --insecure."
          REFUSED=1
        fi ;;
    esac
  done < <(listeners_of_config)
fi

for port in "${OPEN[@]}"; do
  run ufw allow "$port/tcp"
done
if [ ${#OPEN[@]} -eq 0 ]; then
  echo "# No listener opened."
fi

if [ -n "$COORDINATOR_FROM" ]; then
  echo "# Brokers in $COORDINATOR_FROM reach the coordinator's mutual-TLS port $COORDINATOR_PORT/tcp."
  run ufw allow from "$COORDINATOR_FROM" to any port "$COORDINATOR_PORT" proto tcp
else
  echo "# Not opening the coordinator: only brokers need it, over mutual TLS (secureClientPort)."
  echo "# To let brokers on another subnet reach it: $0 --coordinator-from 10.0.0.0/24"
fi

if [ "$DOCKER" = 1 ]; then
  IF=${EXTERNAL_IF:-$(ip route show default 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }')}
  IF=${IF:-eth0}
  echo "# Docker-published ports bypass ufw. In DOCKER-USER, drop new connections"
  echo "# from $IF to the coordinator's ports 2181 and $COORDINATOR_PORT (ports inside the container):"
  for port in 2181 "$COORDINATOR_PORT"; do
    run iptables -I DOCKER-USER -i "$IF" -p tcp -m conntrack --ctorigdstport "$port" --ctdir ORIGINAL -j DROP
  done
  if [ -n "$COORDINATOR_FROM" ]; then
    # -I puts this rule above the DROPs just inserted.
    run iptables -I DOCKER-USER -i "$IF" -s "$COORDINATOR_FROM" -p tcp -m conntrack --ctorigdstport "$COORDINATOR_PORT" --ctdir ORIGINAL -j RETURN
  fi
fi

if [ "$DRY_RUN" = 1 ]; then
  echo "# dry run: nothing was changed"
elif [ ${#OPEN[@]} -gt 0 ] || [ -n "$COORDINATOR_FROM" ]; then
  run ufw status
fi
exit "$REFUSED"
