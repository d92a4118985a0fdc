#!/usr/bin/env bash
# Installs what ctnet needs on a Debian machine (as root) and builds it. Idempotent and quick
# when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  iptables nftables iproute2 util-linux busybox-static conntrack iputils-ping socat
  containernetworking-plugins # the reference plugins: side-by-side tests and benchmarks
  runc hyperfine iperf3       # benchmarks' references and throughput
  gcc libc6-dev libseccomp-dev # the C shims, ctnet-init (seccomp is linked statically)
  containerd                  # the CRI integration test
  etcd-server                 # the multi-node tests' store
  docker-registry             # the image pull tests' registry
  tmux                        # the terminal (-t) tests
  zsh fish                    # the completion scripts run in their shells
  zstd                        # a zstd-compressed layer in the image tests
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # npm ci refuses the lock file that this npm writes (it leaves out other platforms' optional
  # packages), so install from the lock file with npm install, which honours its versions.
  npm install --no-audit --no-fund
fi
npm run --silent build
