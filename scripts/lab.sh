#!/usr/bin/env bash
# The main command: takes a fresh Debian 12 machine (root, Node 20, a clone of Veil) to a running
# 3-node lab — etcd, the operator, one agent per node, encryption between the nodes, the eBPF
# datapath with strict mode — and a passing connectivity test. Installs what it needs first.
#
#   bash scripts/lab.sh                  # WireGuard: up (name "veil") + connectivity test; the lab stays up
#   bash scripts/lab.sh down             # removes the lab and everything it made
#   bash scripts/lab.sh --mode ipsec     # IPsec (ESP): on this machine when its kernel has ESP;
#                                        # otherwise inside a VM with a Debian kernel (scripts/vm/vm.sh
#                                        # exec): up, connectivity test, audit verify, down, power off
#
# VEIL_LAB_NAME, VEIL_LAB_NODES and VEIL_LAB_PODS_PER_NODE change the defaults (veil, 3, 2).
# --in-vm is internal: the script's second half, run inside the guest (read-only checkout, built
# on the host, nothing to install) — the lab is removed at the end because the guest goes away.
set -euo pipefail
cd "$(dirname "$0")/.."

name=${VEIL_LAB_NAME:-veil}
nodes=${VEIL_LAB_NODES:-3}
pods=${VEIL_LAB_PODS_PER_NODE:-2}
mode=wireguard
action=up
in_vm=false
while (($#)); do
  case $1 in
    down) action=down ;;
    --mode) mode=${2:-}; shift ;;
    --mode=*) mode=${1#--mode=} ;;
    --in-vm) in_vm=true ;;
    *) echo "lab.sh: unknown argument \"$1\": use [--mode wireguard|ipsec] or down" >&2; exit 2 ;;
  esac
  shift
done
[[ $mode == wireguard || $mode == ipsec ]] || { echo "lab.sh: --mode \"$mode\" is not wireguard or ipsec" >&2; exit 2; }

veil() { node dist/agent/cli/main.js "$@"; }

if [[ $action == down ]]; then
  veil lab down --name "$name"
  exit
fi

if ! $in_vm; then
  bash scripts/setup.sh
  if [[ ! -d node_modules ]]; then
    npm ci --no-audit --no-fund --loglevel=error
  fi
  npm run build --silent
  if [[ $mode == ipsec ]]; then
    # The product's own probe (agent/lab/esp-probe.ts): one ESP state in a scratch namespace.
    if ! node --input-type=module -e "const { probeEsp } = await import('./dist/agent/lab/esp-probe.js'); process.exit((await probeEsp('veil-labsh-espprobe')).supported ? 0 : 3)"; then
      echo "This kernel has no ESP: running the IPsec lab inside a VM (Debian kernel under qemu, scripts/vm/vm.sh exec)."
      echo "The lab lives in the guest and goes away with it: up, status, connectivity test, audit verify, down."
      exec bash scripts/vm/vm.sh exec "VEIL_LAB_NAME=$name VEIL_LAB_NODES=$nodes VEIL_LAB_PODS_PER_NODE=$pods bash scripts/lab.sh --mode ipsec --in-vm"
    fi
  fi
fi

veil lab up --name "$name" --mode "$mode" --nodes "$nodes" --pods-per-node "$pods"

# The agents need a few seconds for keys, peers and identities (minutes in a loaded VM): wait
# until every pod has one.
for _ in $(seq 1 180); do
  if veil lab status --name "$name" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.exit(JSON.parse(s).pods.every(p=>p.identity!==null)?0:1))'; then
    break
  fi
  sleep 1
done
veil lab status --name "$name"
echo
status=0
veil connectivity-test --lab --name "$name" --wait 300s || status=$?
echo

if $in_vm; then
  echo "Audit logs:"
  ca=$(veil lab status --name "$name" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);console.log(j.caCert)})')
  for log in $(veil lab status --name "$name" --json | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).auditLogs.join("\n")))'); do
    veil audit verify "$log" --ca "$ca" || status=1
  done
  veil lab down --name "$name" || status=1
  exit "$status"
fi
echo "The lab is up. Tear it down with: bash scripts/lab.sh down   (or: node dist/agent/cli/main.js lab down --name $name)"
exit "$status"
