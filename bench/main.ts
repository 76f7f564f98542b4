/**
 * Benchmark entry: `npm run bench -- NAME [options]`. Each benchmark compares Veil with the
 * baseline tool in the same run and reports the ratio; absolute times on shared machines are
 * not stable, ratios are.
 */
const benches: Record<string, () => Promise<{ run(args: string[]): Promise<void> }>> = {
  netlink: () => import('./netlink.js'),
  identity: () => import('./identity.js'),
  policy: () => import('./policy.js'),
  bpf: () => import('./bpf.js'),
  lab: () => import('./lab.js'),
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const load = name ? benches[name] : undefined;
  if (!load) {
    process.stderr.write(`Usage: npm run bench -- <${Object.keys(benches).join('|')}> [options]\n`);
    return 2;
  }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    process.stderr.write('Benchmarks program the kernel in network namespaces: run them as root\n');
    return 1;
  }
  const mod = await load();
  await mod.run(rest);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
