#!/usr/bin/env bash
# The one command that runs every test tier (unit, privileged, vm) on this machine. It installs
# what it needs first: Debian packages (scripts/setup.sh) and npm dependencies, which build the
# addon. Must run as root. The last line printed is the runner's summary: "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
if [[ -f package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  npm install --no-audit --no-fund --loglevel=error
fi

exec node_modules/.bin/vitest run "$@"
