#!/usr/bin/env bash
# The quick-start demo: a container from ctnet's built-in default image publishes port 8080 and
# answers. Everything happens in sandbox namespaces this script makes and removes again, never in
# the machine's own network namespace:
#
#   world ns (198.18.0.2) ──veth── sandbox "host" ns (198.18.0.1, runs ctnet) ── ctnet0 ── container
#
# Its state root, cgroup parent and namespaces are private to this run. Needs root and a build
# (scripts/setup.sh does both installs and the build).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
ctnet="$repo/bin/ctnet"
[ "$(id -u)" = 0 ] || { echo "demo: run as root (it creates network namespaces)" >&2; exit 1; }
[ -x "$repo/bin/ctnet-init" ] || { echo "demo: not built; run scripts/setup.sh first" >&2; exit 1; }

id=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
host=ctdemo-$id-host
world=ctdemo-$id-world
root=$(mktemp -d /tmp/ctdemo-XXXXXX)
export CTNET_ROOT="$root" CTNET_CGROUP_PARENT="ctdemo-$id"

in_host() { nsenter --net="/run/netns/$host" "$@"; }
in_world() { nsenter --net="/run/netns/$world" "$@"; }

cleanup() {
  set +e
  in_host "$ctnet" rm -f web >/dev/null 2>&1
  for f in "$root"/netns/*; do [ -e "$f" ] && umount -l "$f" 2>/dev/null; done
  for c in /sys/fs/cgroup/*/"$CTNET_CGROUP_PARENT" /sys/fs/cgroup/"$CTNET_CGROUP_PARENT"; do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  ip netns del "$host" 2>/dev/null
  ip netns del "$world" 2>/dev/null
  rm -rf "$root"
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

# The sandbox host and a "world" host beside it (the internet, as far as this demo goes).
ip netns add "$host"
ip netns add "$world"
ip link add ctdemo-up type veth peer name eth0 netns "$world"
ip link set ctdemo-up netns "$host"
in_host ip link set ctdemo-up name uplink0
in_host ip addr add 198.18.0.1/24 dev uplink0
in_host ip link set uplink0 up
in_host ip link set lo up
in_world ip addr add 198.18.0.2/24 dev eth0
in_world ip link set eth0 up
in_world ip link set lo up

step "ctnet run -d --name web -p 8080:80 default httpd   (inside the sandbox host)"
in_host "$ctnet" run -d --name web -p 8080:80 default \
  sh -c 'mkdir -p /srv && echo "hello from a ctnet container ($(hostname), $(ip -o -4 addr show eth0 | cut -d" " -f7))" > /srv/index.html && exec busybox httpd -f -p 80 -h /srv'

step "ctnet ps"
in_host "$ctnet" ps

# busybox wget -T crashes (Debian 1.35 static build), so timeout(1) bounds each try.
fetch() { # retries while httpd starts
  for _ in $(seq 1 50); do
    if out=$("$@" 2>/dev/null); then echo "$out"; return 0; fi
    sleep 0.1
  done
  echo "demo: no answer from: $*" >&2
  return 1
}
step "from another host (the world namespace): wget -qO- http://198.18.0.1:8080/"
fetch in_world timeout 3 busybox wget -qO- http://198.18.0.1:8080/
step "from the host itself: wget -qO- http://127.0.0.1:8080/"
fetch in_host timeout 3 busybox wget -qO- http://127.0.0.1:8080/

step "ctnet port web"
in_host "$ctnet" port web
step "ctnet debug trace web 8080"
in_host "$ctnet" debug trace web 8080 || true

step "ctnet rm -f web"
in_host "$ctnet" rm -f web
echo
echo "demo: done; the sandbox namespaces and state are removed on exit"
