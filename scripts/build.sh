#!/usr/bin/env bash
# Builds everything a checkout needs: the TypeScript (dist/) and the native addon (build/).
# Run by `npm install` (the project's own "prepare" script) and by `npm run build`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build against the Node headers installed with this machine's Node (never download them).
node_bin=$(node -p 'process.execPath')
nodedir=$(dirname "$(dirname "$node_bin")")
if [[ ! -f "$nodedir/include/node/node_api.h" ]]; then
  echo "build: Node headers not found under $nodedir/include/node; install them (Debian: nodejs-dev or libnode-dev)" >&2
  exit 1
fi

echo "build: native addon"
if [[ -f build/Makefile ]]; then
  node_modules/.bin/node-gyp build --nodedir="$nodedir" --jobs="$(nproc)" --loglevel=warn
else
  node_modules/.bin/node-gyp rebuild --nodedir="$nodedir" --jobs="$(nproc)" --loglevel=warn
fi

echo "build: TypeScript"
node_modules/.bin/tsc -p tsconfig.json
chmod +x dist/agent/cli/main.js

# `npx veil ...` from the checkout: npm links dependencies' bins, not the project's own, so link
# ours next to them.
mkdir -p node_modules/.bin
ln -sfn ../../dist/agent/cli/main.js node_modules/.bin/veil
