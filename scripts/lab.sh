#!/usr/bin/env bash
# The main command: takes a fresh Debian 12 machine (root, Node 20, a clone of Veil) to a running
# 3-node lab — etcd, the operator, one agent per node, WireGuard between the nodes, the eBPF
# datapath with strict mode — and a passing connectivity test. Installs what it needs first.
#
#   bash scripts/lab.sh              # up (name "veil") + connectivity test; the lab stays up
#   bash scripts/lab.sh down         # removes the lab and everything it made
#
# VEIL_LAB_NAME, VEIL_LAB_NODES and VEIL_LAB_PODS_PER_NODE change the defaults (veil, 3, 2).
set -euo pipefail
cd "$(dirname "$0")/.."

name=${VEIL_LAB_NAME:-veil}
if [[ ${1:-} == down ]]; then
  exec node dist/agent/cli/main.js lab down --name "$name"
fi

bash scripts/setup.sh
if [[ ! -d node_modules ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run build --silent

veil() { node dist/agent/cli/main.js "$@"; }
veil lab up --name "$name" --nodes "${VEIL_LAB_NODES:-3}" --pods-per-node "${VEIL_LAB_PODS_PER_NODE:-2}"

# The agents need a few seconds for keys, peers and identities: wait until every pod has one.
for _ in $(seq 1 60); do
  if veil lab status --name "$name" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.exit(JSON.parse(s).pods.every(p=>p.identity!==null)?0:1))'; then
    break
  fi
  sleep 1
done
veil lab status --name "$name"
echo
veil connectivity-test --lab --name "$name"
echo
echo "The lab is up. Tear it down with: bash scripts/lab.sh down   (or: node dist/agent/cli/main.js lab down --name $name)"
