#!/usr/bin/env bash
# A Docker engine for the compose e2e test (e2e/test_compose.py), made available where it can be; idempotent.
#
# As root on Debian: installs Debian's docker.io, docker-compose (1.29) and debootstrap when missing, starts dockerd
# when no engine answers, and builds the offline base image meshplane-base:bookworm when it is absent or was built
# from other inputs (no image registry is needed: the root filesystem comes from Debian's packages by debootstrap).
# Without root, or without apt, it says what is missing and exits 0: the compose test is then skipped, saying why.
#
# dockerd is started with --ip-masq=false --ip-forward=false: containers reach each other and the host, nothing is
# NATed or routed outward. Heavy artifacts are cached under ${MESHPLANE_CACHE:-~/.cache/meshplane}: the debootstrap
# tarball (keyed by suite, package list and this recipe) survives between runs, and so does the imported image.
set -euo pipefail

CACHE="${MESHPLANE_CACHE:-$HOME/.cache/meshplane}"
BASE_IMAGE="${MESHPLANE_BASE_IMAGE:-meshplane-base:bookworm}"
SUITE=bookworm
INCLUDE=python3,python3-venv,iptables,ca-certificates
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# Trimmed from the root filesystem: documentation, translations, apt's package lists (the image never runs apt).
TRIM="usr/share/doc usr/share/man usr/share/info usr/share/locale var/cache/apt var/lib/apt/lists var/log/*"
RECIPE="debootstrap --variant=minbase --include=$INCLUDE $SUITE; rm -rf $TRIM; v1"
KEY="$(printf '%s' "$RECIPE" | sha256sum | cut -c1-16)"
DOCKERD_LOG="${MESHPLANE_DOCKERD_LOG:-/var/log/meshplane-dockerd.log}"

say() { echo "docker-engine: $*"; }

if [ "$(id -u)" != 0 ]; then
    say "not root: no Docker engine set up here (the compose test is skipped unless an engine already answers)"
    exit 0
fi

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
        say "missing ${missing[*]} and no apt-get: the compose test is skipped"
        exit 0
    fi
    say "installing Debian's ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

if ! engine_answers; then
    say "starting dockerd (--ip-masq=false --ip-forward=false; log $DOCKERD_LOG)"
    setsid nohup dockerd --ip-masq=false --ip-forward=false >>"$DOCKERD_LOG" 2>&1 </dev/null &
    for _ in $(seq 60); do
        engine_answers && break
        sleep 0.5
    done
    engine_answers || { say "dockerd did not answer within 30s; see $DOCKERD_LOG"; tail -20 "$DOCKERD_LOG"; exit 1; }
fi

if [ "$(docker image inspect -f '{{ index .Config.Labels "io.meshplane.base-key" }}' "$BASE_IMAGE" 2>/dev/null)" = "$KEY" ]; then
    say "base image $BASE_IMAGE present (key $KEY)"
    exit 0
fi
tarball="$CACHE/base/$SUITE-$KEY.tar"
if [ ! -s "$tarball" ]; then
    say "debootstrap $SUITE (minbase + $INCLUDE) into $tarball (about 90 s)"
    mkdir -p "$CACHE/base"
    root="$(mktemp -d "$CACHE/base/rootfs.XXXXXX")"
    trap 'rm -rf "$root"' EXIT
    debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$root" "$MIRROR" >"$CACHE/base/debootstrap.log" 2>&1 \
        || { tail -20 "$CACHE/base/debootstrap.log"; exit 1; }
    (cd "$root" && eval rm -rf $TRIM)
    tar -C "$root" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -f "$CACHE"/base/"$SUITE"-*.tar.tmp
    find "$CACHE/base" -name "$SUITE-*.tar" ! -name "$SUITE-$KEY.tar" -delete  # older recipes
fi
say "importing $tarball as $BASE_IMAGE"
docker import --change "LABEL io.meshplane.base-key=$KEY" --change 'CMD ["/bin/bash"]' "$tarball" "$BASE_IMAGE" >/dev/null
