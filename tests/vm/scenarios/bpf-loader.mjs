// Guest side of tests/vm/bpf-loader.test.ts: loads the loader fixture with the built agent
// (dist/), attaches it in auto mode to the host side of a veth in namespace argv[2] (created by
// the test), re-attaches, replaces, test-runs and detaches, and prints one JSON object with what
// each step returned. Runs as root in the guest; the guest kernel (6.1) has no tcx, so auto mode
// must choose clsact.
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const dp = await import(`${root}dist/agent/datapath/datapath.js`);
const { Counters } = await import(`${root}dist/agent/datapath/counters.js`);
const { EventReader } = await import(`${root}dist/agent/datapath/events.js`);

const [netns, pinDir] = process.argv.slice(2);
const out = {};
const obj = await dp.loadObject(`${root}build/bpf-test/loader-fixture.bpf.o`, { pinDir });
try {
  const target = { interface: 'lxc0', direction: 'ingress', netns };
  out.programs = [...obj.programs.keys()].sort();
  out.first = await dp.attach(obj.program('fixture_pass'), target, { pinDir });
  out.again = await dp.attach(obj.program('fixture_pass'), target, { pinDir });
  out.replace = await dp.attach(obj.program('fixture_drop'), target, { pinDir });
  out.attachment = await dp.attachment(target, { pinDir });
  out.dropId = obj.program('fixture_drop').id;
  out.tcxForced = await dp.attach(obj.program('fixture_pass'), target, { pinDir, mode: 'tcx' }).then(
    (r) => ({ ok: true, r }),
    (e) => ({ ok: false, code: e.code, message: e.message }),
  );

  const events = [];
  const reader = EventReader.open(obj.map('veil_events'), { onEvent: (e) => events.push(e) });
  const frame = Buffer.alloc(60);
  frame.writeUInt16BE(0x0800, 12);
  frame[14] = 0x45;
  frame.writeUInt16BE(46, 16);
  frame[23] = 17;
  frame.set([10, 0, 0, 1], 26);
  frame.set([10, 0, 0, 2], 30);
  const pass = await dp.testRun(obj.program('fixture_pass'), frame, { repeat: 5 });
  const drop = await dp.testRun(obj.program('fixture_drop'), frame);
  const deadline = Date.now() + 10_000;
  while (events.length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  reader.close();
  out.testRun = { pass: { retval: pass.retval, mark: pass.mark }, drop: { retval: drop.retval } };
  out.events = events.map((e) => e.reasonName);
  const counters = await Counters.open(obj);
  out.counters = (await counters.read()).map((r) => ({ ...r, packets: String(r.packets), bytes: String(r.bytes) }));
} finally {
  out.detach = await dp.detach({ interface: 'lxc0', direction: 'ingress', netns }, { pinDir });
  obj.close();
}
console.log(JSON.stringify(out));
