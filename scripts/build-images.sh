#!/usr/bin/env bash
# Builds gregor as a fully static executable and the two scratch images,
# gregor/broker and gregor/coordinator, tagged with the crate version and
# `latest`. Nothing is pulled: both images are FROM scratch.
#
#   scripts/build-images.sh                 # build the binary, then the images
#   scripts/build-images.sh --binary PATH   # use an already built static binary
#   scripts/build-images.sh --no-install    # never apt-get/rustup anything
#   scripts/build-images.sh --glibc         # skip musl (tests the fallback)
#
# The binary: x86_64-unknown-linux-musl first (musl resolves host names
# without NSS, which a scratch image has not); if that target or its C
# compiler cannot be had or the build fails, glibc with crt-static. Either
# way the result is checked with `file` and `ldd` to be static.
set -euo pipefail
cd "$(dirname "$0")/.."

BINARY=""
INSTALL=1
TRY_MUSL=1
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) BINARY=$2; shift 2 ;;
    --no-install) INSTALL=0; shift ;;
    --glibc) TRY_MUSL=0; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "build-images.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

say() { echo "build-images: $*" >&2; }

VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -n 1)
REVISION=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
MUSL=x86_64-unknown-linux-musl
GNU=x86_64-unknown-linux-gnu

# The entry points Kafka users type; each is a link to the one binary,
# which picks its role from the name it was invoked by.
ENTRY_POINTS=(
  kafka-server-start.sh kafka-server-stop.sh
  zookeeper-server-start.sh zookeeper-server-stop.sh
  kafka-topics.sh kafka-console-producer.sh kafka-console-consumer.sh
  kafka-consumer-groups.sh kafka-delete-records.sh kafka-configs.sh
  kafka-acls.sh kafka-metadata-quorum.sh kafka-storage.sh kafka-leader-election.sh
  kafka-reassign-partitions.sh
)

is_static() {
  local bin=$1 desc
  desc=$(file -L "$bin")
  case "$desc" in
    *"statically linked"*|*"static-pie linked"*) ;;
    *) say "not static according to file: $desc"; return 1 ;;
  esac
  # ldd prints "not a dynamic executable" (exit 1) or "statically linked".
  if ldd "$bin" 2>&1 | grep -Eq '=>|ld-linux'; then
    say "not static according to ldd:"; ldd "$bin" >&2 || true
    return 1
  fi
}

musl_ready() {
  if ! rustup target list --installed 2>/dev/null | grep -qx "$MUSL"; then
    [ "$INSTALL" = 1 ] && rustup target add "$MUSL" >&2 || return 1
  fi
  if ! command -v musl-gcc >/dev/null; then
    if [ "$INSTALL" = 1 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends musl-tools >&2 \
        || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive \
             apt-get install -y -q --no-install-recommends musl-tools >&2; } || return 1
    else
      return 1
    fi
  fi
}

build_binary() {
  # mimalloc, lz4-sys and zstd-sys compile C: for musl that needs musl-gcc.
  if [ "$TRY_MUSL" = 1 ] && musl_ready; then
    say "building for $MUSL"
    if CC_x86_64_unknown_linux_musl=musl-gcc \
       nice -n 10 cargo build --release --target "$MUSL" --bin gregor >&2; then
      BINARY=target/$MUSL/release/gregor
      if is_static "$BINARY"; then return 0; fi
    fi
    say "the musl build failed; falling back to static glibc"
  elif [ "$TRY_MUSL" = 1 ]; then
    say "no musl target or musl-gcc; falling back to static glibc"
  fi
  say "building for $GNU with crt-static (note: static glibc resolves names only from /etc/hosts and DNS without NSS modules)"
  RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    nice -n 10 cargo build --release --target "$GNU" --bin gregor >&2
  BINARY=target/$GNU/release/gregor
  is_static "$BINARY"
}

if [ -z "$BINARY" ]; then
  build_binary
else
  is_static "$BINARY"
fi
say "binary: $BINARY ($(file -b "$BINARY" | cut -d, -f1-2))"

# The build context: only what the images hold, so nothing else is sent
# to the daemon.
CONTEXT=target/docker-context
rm -rf "$CONTEXT"
mkdir -p "$CONTEXT/rootfs/usr/local/bin" "$CONTEXT/rootfs/etc" "$CONTEXT/rootfs/tmp" "$CONTEXT/data"
install -m 0755 "$BINARY" "$CONTEXT/rootfs/usr/local/bin/gregor"
strip "$CONTEXT/rootfs/usr/local/bin/gregor" 2>/dev/null || true
for name in "${ENTRY_POINTS[@]}"; do
  ln -s gregor "$CONTEXT/rootfs/usr/local/bin/$name"
done
chmod 1777 "$CONTEXT/rootfs/tmp"
cat > "$CONTEXT/rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
gregor:x:1000:1000:gregor:/var/lib/gregor:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
EOF
cat > "$CONTEXT/rootfs/etc/group" <<'EOF'
root:x:0:
gregor:x:1000:
nogroup:x:65534:
EOF
cp docker/Dockerfile.broker docker/Dockerfile.coordinator "$CONTEXT/"

# BuildKit would want to pull its Dockerfile front end; the classic
# builder needs nothing from outside for FROM scratch.
export DOCKER_BUILDKIT=0
for role in broker coordinator; do
  say "building gregor/$role:$VERSION"
  docker build -q \
    --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" --build-arg CREATED="$CREATED" \
    -f "$CONTEXT/Dockerfile.$role" -t "gregor/$role:$VERSION" -t "gregor/$role:latest" \
    "$CONTEXT" >&2
done

for role in broker coordinator; do
  bytes=$(docker image inspect --format '{{.Size}}' "gregor/$role:$VERSION")
  printf 'gregor/%s:%s %s bytes (%s MB)\n' "$role" "$VERSION" "$bytes" \
    "$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1000000 }')"
done
