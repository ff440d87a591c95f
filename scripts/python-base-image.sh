#!/usr/bin/env bash
# Builds a Python base image without pulling from a registry: a minimal
# Debian root file system from Debian's packages (debootstrap), with
# python3 and pip, imported with `docker import`. Used where python images
# cannot be pulled, so the tutorial's Python app really runs in a container.
#
#   scripts/python-base-image.sh          # gregor/python-base:bookworm
#   scripts/python-base-image.sh --app    # and gregor/python-app:latest from
#                                         # examples/python-app, installing
#                                         # kafka-python from a wheel fetched
#                                         # on the host (pip download)
#   scripts/python-base-image.sh --force  # rebuild the base even if present
#
# Needs root (debootstrap, chroot) and a Debian mirror; MIRROR overrides
# the mirror, SUITE the Debian release.
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
BASE=gregor/python-base:$SUITE
APP=gregor/python-app:latest
WITH_APP=0
FORCE=0
for arg in "$@"; do
  case "$arg" in
    --app) WITH_APP=1 ;;
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "python-base-image.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done
say() { echo "python-base-image: $*" >&2; }

if [ "$FORCE" = 1 ] || ! docker image inspect "$BASE" >/dev/null 2>&1; then
  if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >&2 \
      || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive \
           apt-get install -y -q --no-install-recommends debootstrap >&2; }
  fi
  ROOTFS=$(mktemp -d /tmp/gregor-python-rootfs.XXXXXX)
  trap 'rm -rf "$ROOTFS"' EXIT
  say "debootstrap $SUITE into $ROOTFS (a few minutes)"
  nice -n 10 debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates \
    "$SUITE" "$ROOTFS" "$MIRROR" >&2
  # What a container base image leaves out: package caches, documentation,
  # and Debian's pip guard (this image is the environment, as python:slim is).
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
         "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/locale/*
  rm -f "$ROOTFS"/usr/lib/python3*/EXTERNALLY-MANAGED
  # Docker provides these at run time.
  : > "$ROOTFS/etc/resolv.conf"
  : > "$ROOTFS/etc/hostname"
  say "importing as $BASE"
  tar -C "$ROOTFS" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$BASE" >&2
else
  say "$BASE already present (--force rebuilds it)"
fi

if [ "$WITH_APP" = 1 ]; then
  WHEELS=examples/python-app/wheels
  PIP=${PIP:-$(command -v pip3 || command -v pip)}
  say "fetching kafka-python's wheel into $WHEELS"
  "$PIP" download -q --only-binary=:all: --no-deps -d "$WHEELS" -r examples/python-app/requirements.txt >&2
  say "building $APP"
  DOCKER_BUILDKIT=0 docker build -q --build-arg BASE_IMAGE="$BASE" --build-arg OFFLINE=1 \
    -t "$APP" examples/python-app >&2
fi
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^gregor/python-' || true
