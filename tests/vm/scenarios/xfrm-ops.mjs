// Guest side of tests/vm/xfrm-esp.test.ts: runs a list of calls to the addon's TypeScript API
// (the built dist/, Node 20 cannot run .ts) and prints one JSON line with each call's result.
//
// stdin: JSON [{ "call": "xfrm.addStates", "args": [...], "expectError": true? }, ...]
//   Buffers travel as { "$hex": "..." }; results carry bigints as { "$bigint": "..." }.
// stdout: JSON [{ "ok": true, "value": ... } | { "ok": false, "error": { name, code, ... } }]
// A call that fails without "expectError" ends the run with exit code 1 (its error printed).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dist = fileURLToPath(new URL('../../../dist/agent/', import.meta.url));
const modules = {
  link: await import(`${dist}netlink/link.js`),
  address: await import(`${dist}netlink/address.js`),
  route: await import(`${dist}netlink/route.js`),
  xfrm: {
    ...(await import(`${dist}xfrm/state.js`)),
    ...(await import(`${dist}xfrm/policy.js`)),
  },
};

const revive = (_key, v) =>
  v && typeof v === 'object' && typeof v.$hex === 'string' && Object.keys(v).length === 1 ? Buffer.from(v.$hex, 'hex') : v;
const replace = (_key, v) => (typeof v === 'bigint' ? { $bigint: v.toString() } : v);

function errorFields(e) {
  const out = { name: e?.name, message: e?.message };
  for (const k of ['code', 'field', 'index', 'errno', 'op', 'extack']) if (e?.[k] !== undefined) out[k] = e[k];
  return out;
}

const steps = JSON.parse(readFileSync(0, 'utf8'), revive);
const results = [];
for (const step of steps) {
  const [family, fn] = step.call.split('.');
  const f = modules[family]?.[fn];
  if (typeof f !== 'function') {
    console.log(JSON.stringify([...results, { ok: false, error: { name: 'Error', message: `No function "${step.call}"` } }]));
    process.exit(1);
  }
  try {
    // JSON has no undefined: a null argument stands for an omitted one.
    results.push({ ok: true, value: (await f(...step.args.map((a) => a ?? undefined))) ?? null });
  } catch (e) {
    results.push({ ok: false, error: errorFields(e) });
    if (!step.expectError) {
      console.log(JSON.stringify(results, replace));
      process.exit(1);
    }
  }
}
console.log(JSON.stringify(results, replace));
