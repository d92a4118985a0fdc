#!/bin/sh
# ADD then DEL of host-local alone, ours (bin/cni/host-local) against the reference
# (/usr/lib/cni/host-local), with N leases already in the directory. Runs in sandbox namespaces
# (ctb-hl-…) that it removes at the end. Needs root and hyperfine.
# Usage: bench/host-local.sh [N ...]   (default: 0 200)
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
suffix=$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
host=ctb-hl-$suffix-h
ctr=ctb-hl-$suffix-c
work=$(mktemp -d /tmp/ctb-hl-XXXXXX)
cleanup() { ip netns del "$host" 2>/dev/null || true; ip netns del "$ctr" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM
ip netns add "$host"
ip netns add "$ctr"

cat >"$work/addel" <<SCRIPT
#!/bin/sh
# One ADD and one DEL of plugin \$1 with config \$2.
export CNI_CONTAINERID=bench CNI_NETNS=/run/netns/$ctr CNI_IFNAME=eth0 CNI_PATH=/nonexistent
CNI_COMMAND=ADD "\$1" <"\$2" >/dev/null || exit 1
CNI_COMMAND=DEL "\$1" <"\$2" >/dev/null
SCRIPT
cat >"$work/startup" <<SCRIPT
#!/bin/sh
# Two VERSION calls of plugin \$1: process startup and bundle load, no IPAM work.
echo '{"cniVersion":"1.0.0"}' | CNI_COMMAND=VERSION "\$1" >/dev/null
echo '{"cniVersion":"1.0.0"}' | CNI_COMMAND=VERSION "\$1" >/dev/null
SCRIPT
chmod +x "$work/startup"
chmod +x "$work/addel"

populations=${*:-0 200}
for n in $populations; do
  for who in ours ref; do
    data="$work/data-$who-$n"
    mkdir -p "$data/net"
    printf '{"cniVersion":"1.0.0","name":"net","type":"host-local","ipam":{"type":"host-local","dataDir":"%s","ranges":[[{"subnet":"10.77.0.0/16"}]]}}' "$data" >"$work/conf-$who-$n"
    # N leases of other containers, written in the reference format.
    i=0
    while [ "$i" -lt "$n" ]; do
      printf 'other%s\r\neth0' "$i" >"$data/net/10.77.$((i / 250 + 1)).$((i % 250 + 2))"
      i=$((i + 1))
    done
  done
  nsenter --net="/run/netns/$host" hyperfine -N --warmup 3 --runs "${RUNS:-30}" --export-json "$work/r-$n.json" \
    -n "ours N=$n" "$work/addel $repo/bin/cni/host-local $work/conf-ours-$n" \
    -n "reference N=$n" "$work/addel /usr/lib/cni/host-local $work/conf-ref-$n" \
    -n "ours 2x VERSION" "$work/startup $repo/bin/cni/host-local" >&2
  node -e '
    const r = require(process.argv[1]).results;
    const ms = (x) => (x * 1000).toFixed(1);
    console.log(`N=${process.argv[2]}: ADD+DEL ours ${ms(r[0].mean)} ms ± ${ms(r[0].stddev)}, reference ${ms(r[1].mean)} ms ± ${ms(r[1].stddev)}, ratio ${(r[0].mean / r[1].mean).toFixed(2)}; ours startup (2x VERSION) ${ms(r[2].mean)} ms, so IPAM work ${ms(r[0].mean - r[2].mean)} ms`);
  ' "$work/r-$n.json" "$n"
done
