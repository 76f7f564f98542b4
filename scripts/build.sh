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

# eBPF objects, after node-gyp (a rebuild wipes build/). Programs from bpf/*.bpf.c into
# build/bpf/, test fixtures from tests/fixtures/bpf/*.bpf.c into build/bpf-test/.
echo "build: eBPF objects"
if ! command -v clang >/dev/null 2>&1; then
  echo "build: clang not found; install it (Debian: apt-get install clang llvm libbpf-dev, or run scripts/setup.sh)" >&2
  exit 1
fi
if [[ ! -f /usr/include/bpf/bpf_helpers.h ]]; then
  echo "build: <bpf/bpf_helpers.h> not found; install libbpf-dev (or run scripts/setup.sh)" >&2
  exit 1
fi
# Debian keeps <asm/types.h> under the multiarch directory, which clang -target bpf does not search.
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
compile_bpf() { # <out dir> <sources...>
  local out=$1; shift
  mkdir -p "$out"
  local src
  for src in "$@"; do
    [[ -f $src ]] || continue
    clang -O2 -g -Wall -target bpf -D__TARGET_ARCH_x86 -I bpf/include -I bpf -I "/usr/include/$multiarch" \
      -c "$src" -o "$out/$(basename "${src%.c}").o"
  done
}
compile_bpf build/bpf bpf/*.bpf.c
compile_bpf build/bpf-test tests/fixtures/bpf/*.bpf.c

echo "build: TypeScript"
node_modules/.bin/tsc -p tsconfig.json
chmod +x dist/agent/cli/main.js

# `npx veil ...` from the checkout: npm links dependencies' bins, not the project's own, so link
# ours next to them.
mkdir -p node_modules/.bin
ln -sfn ../../dist/agent/cli/main.js node_modules/.bin/veil
