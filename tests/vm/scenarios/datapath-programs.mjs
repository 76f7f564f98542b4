// Guest side of tests/vm/datapath-programs.test.ts: runs the datapath program cases the host
// built (stdin: { runs: [{ name, world, cases }], pinBase, nsBase }) with the shared runner
// (tests/support/program-runner.mjs) and the built agent (dist/), then attaches the four
// programs to a veth and the uplink side of a namespace through the TypeScript API. Prints one
// JSON object: { runs: { name: results }, attach: [...] }. Judging is the host's.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const dist = `${root}dist/agent/datapath/`;
const dp = await import(`${dist}datapath.js`);
const api = {
  loadObjects: dp.loadObjects,
  testRun: dp.testRun,
  Ipcache: (await import(`${dist}ipcache.js`)).Ipcache,
  openEndpointMap: (await import(`${dist}endpoints.js`)).openEndpointMap,
  ConfigMap: (await import(`${dist}config-map.js`)).ConfigMap,
  openPolicyMap: (await import(`${dist}policy-map.js`)).openPolicyMap,
  Counters: (await import(`${dist}counters.js`)).Counters,
  EventReader: (await import(`${dist}events.js`)).EventReader,
};
const { runProgramCases } = await import(`${root}tests/support/program-runner.mjs`);

const input = JSON.parse(readFileSync(0, 'utf8'));
const out = { runs: {}, attach: [] };
let i = 0;
for (const run of input.runs) {
  const r = await runProgramCases(api, {
    objectsDir: `${root}build/bpf`,
    pinDir: `${input.pinBase}-${i}`,
    netns: `${input.nsBase}${i}`,
    world: run.world,
    cases: run.cases,
  });
  out.runs[run.name] = r.results;
  i++;
}

// attach: the programs on a pod veth (both directions) and on an "uplink" veth
const ns = `${input.nsBase}at`;
const pinDir = `${input.pinBase}-attach`;
const ip = (...a) => execFileSync('ip', a, { stdio: ['ignore', 'pipe', 'pipe'] });
ip('netns', 'add', ns);
const objects = [];
try {
  ip('-n', ns, 'link', 'add', 'lxc0', 'type', 'veth', 'peer', 'name', 'eth0');
  ip('-n', ns, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up1');
  for (const d of ['lxc0', 'eth0', 'up0', 'up1']) ip('-n', ns, 'link', 'set', d, 'up');
  const targets = [
    ['from-pod', 'veil_from_pod_prog', 'lxc0', 'ingress'],
    ['to-pod', 'veil_to_pod_prog', 'lxc0', 'egress'],
    ['uplink-egress', 'veil_uplink_egress_prog', 'up0', 'egress'],
    ['uplink-ingress', 'veil_uplink_ingress_prog', 'up0', 'ingress'],
  ];
  objects.push(...(await dp.loadObjects(targets.map(([file]) => `${root}build/bpf/${file}.bpf.o`), { pinDir })));
  for (const [i, [, prog, dev, direction]] of targets.entries()) {
    const p = objects[i].program(prog);
    const r = await dp.attach(p, { interface: dev, direction, netns: ns }, { pinDir });
    out.attach.push({ program: prog, dev, direction, mode: r.mode, action: r.action, id: p.id });
  }
} finally {
  for (const o of objects) o.close();
  try {
    ip('netns', 'del', ns);
  } catch {
    /* gone */
  }
  execFileSync('rm', ['-rf', pinDir]);
}
console.log(JSON.stringify(out));
