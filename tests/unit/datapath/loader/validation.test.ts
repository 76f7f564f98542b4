/**
 * Arguments are validated in TypeScript before anything crosses into the addon: each bad value
 * is a ValidationError naming the field, quoting the value and saying how to fix it.
 */
import { describe, expect, it } from 'vitest';
import { BpfMap } from '../../../../agent/datapath/bpf-map.js';
import { attach, attachment, detach, listLinks, loadObject, testRun, type BpfProgram } from '../../../../agent/datapath/datapath.js';
import { u32Codec } from '../../../../agent/datapath/layout.js';
import { ValidationError } from '../../../../agent/errors.js';

const prog: BpfProgram = { name: 'p', fd: 1_000_000, id: 1, objectPath: '/x.o' };
const target = { interface: 'lxc0', direction: 'ingress' as const };
const pinDir = '/sys/fs/bpf/veil-unit';

async function field(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ValidationError);
  expect((err as Error).message).toMatch(/^Invalid /);
  return (err as ValidationError).field;
}

describe('datapath argument validation', () => {
  it('loadObject()', async () => {
    expect(await field(loadObject('', { pinDir }))).toBe('objectPath');
    expect(await field(loadObject('/x.o', { pinDir: 'rel' }))).toBe('pinDir');
    expect(await field(loadObject('/x.o', { pinDir: '/sys/fs/bpf/../../etc' }))).toBe('pinDir');
    expect(await field(loadObject('/x.o', { pinDir, programs: 'a' as unknown as string[] }))).toBe('programs');
    expect(await field(loadObject('/x.o', { pinDir, programs: [''] }))).toBe('programs[0]');
    expect(await field(loadObject('/x.o', { pinDir, rodata: { v: 'x' as unknown as Buffer } }))).toBe('rodata.v');
    expect(await field(loadObject('/x.o', { pinDir, maxEntries: { m: 0 } }))).toBe('maxEntries.m');
  });

  it('attach(), detach(), attachment()', async () => {
    expect(await field(attach(prog, { ...target, interface: 'a/b' }, { pinDir }))).toBe('interface');
    expect(await field(attach(prog, { ...target, interface: 0 }, { pinDir }))).toBe('interface');
    expect(await field(attach(prog, { ...target, direction: 'both' as 'ingress' }, { pinDir }))).toBe('direction');
    expect(await field(attach(prog, { ...target, netns: 'a/b' }, { pinDir }))).toBe('netns');
    expect(await field(attach(prog, target, { pinDir, mode: 'xdp' as 'tcx' }))).toBe('mode');
    expect(await field(attach(prog, target, { pinDir: '' }))).toBe('pinDir');
    expect(await field(detach({ ...target, interface: '' }, { pinDir }))).toBe('interface');
    expect(await field(attachment(target, { pinDir: 'x' }))).toBe('pinDir');
    expect(await field(listLinks({ pinDir: 'x' }))).toBe('pinDir');
  });

  it('testRun()', async () => {
    expect(await field(testRun(prog, Buffer.alloc(13)))).toBe('data');
    expect(await field(testRun(prog, Buffer.alloc(14), { repeat: 0 }))).toBe('repeat');
    expect(await field(testRun(prog, Buffer.alloc(14), { ctx: { mark: -1 } }))).toBe('ctx.mark');
    expect(await field(testRun(prog, Buffer.alloc(14), { netns: '' }))).toBe('netns');
  });

  it('BpfMap.open()', async () => {
    expect(await field(BpfMap.open('relative/path', u32Codec, u32Codec))).toBe('map');
    expect(await field(BpfMap.open(-1, u32Codec, u32Codec))).toBe('map');
  });
});
