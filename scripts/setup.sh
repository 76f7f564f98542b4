#!/usr/bin/env bash
# Installs every Debian package Veil's build, tests and benchmarks need. Idempotent: a second
# run installs nothing and exits quickly. Run as root on Debian 12.
set -euo pipefail

PACKAGES=(
  # build: native addon and eBPF objects
  build-essential python3 pkg-config clang llvm libbpf-dev libelf-dev zlib1g-dev
  # kernel tools used by tests to cross-check the addon, and by benchmarks as baselines
  iproute2 bpftool wireguard-tools wireguard-go tcpdump tshark iputils-ping socat iperf3 kmod
  # control plane
  etcd-server
  # VM tier: a real Debian kernel under qemu
  qemu-system-x86 busybox-static linux-image-amd64 cpio xz-utils zstd
)

if [[ $(id -u) -ne 0 ]]; then
  echo "scripts/setup.sh must run as root (it installs Debian packages with apt-get)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer once, non-interactively.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: all Debian packages present"
fi

# bpffs for pinned maps (the agent also mounts it itself when missing).
if ! mountpoint -q /sys/fs/bpf; then
  mount -t bpf bpf /sys/fs/bpf || true
fi
