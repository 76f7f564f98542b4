#!/usr/bin/env bash
# The one command that runs every test tier (unit, privileged, vm) on this machine. It installs
# what it needs first: Debian packages (scripts/setup.sh) and npm dependencies, which build the
# addon and the TypeScript. Must run as root. The last line printed is the total over all tiers:
# "N passed, N failed".
#
# The host tiers, the traffic tests (one file at a time) and the VM tier run as three vitest
# runs, so a VM that cannot boot fails the VM tier without hiding the results of the others. Arguments are passed to one vitest run instead
# (e.g. `bash scripts/test.sh --project unit tests/unit/netlink`).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
if [[ -f package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  npm install --no-audit --no-fund --loglevel=error
fi

if (($#)); then
  exec node_modules/.bin/vitest run "$@"
fi

summaries=$(mktemp -d)
trap 'rm -rf "$summaries"' EXIT
VEIL_SUMMARY_FILE=$summaries/host.json node_modules/.bin/vitest run --project unit --project privileged || true
VEIL_SUMMARY_FILE=$summaries/traffic.json node_modules/.bin/vitest run --project traffic || true
VEIL_SUMMARY_FILE=$summaries/vm.json node_modules/.bin/vitest run --project vm || true
echo
node scripts/summary.mjs "$summaries/host.json" "$summaries/traffic.json" "$summaries/vm.json"
