/**
 * Parser for `ip xfrm policy` text output (iproute2 6.1 prints no JSON for xfrm), used to
 * cross-check what the addon installed against what the standard tool reads back.
 *
 *   src 10.1.0.0/16 dst 10.2.0.0/16 proto tcp sport 80 dport 443
 *   	dir out priority 100 ptype main
 *   	mark 0x100/0xf00
 *   	if_id 0x7
 *   	tmpl src 10.0.0.1 dst 10.0.0.2
 *   		proto esp spi 0x00000077 reqid 5 mode tunnel
 *   		level use
 */
import { run } from '../../support/netns.js';

export interface IpPolicy {
  src: string;
  dst: string;
  proto?: string;
  sport?: number;
  dport?: number;
  dir: string;
  action: string;
  priority: number;
  mark?: { value: number; mask: number };
  ifId?: number;
  templates: { src: string; dst: string; proto: string; spi?: number; reqid: number; mode: string; optional: boolean }[];
}

function pairs(tokens: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < tokens.length; i += 2) m.set(tokens[i]!, tokens[i + 1]!);
  return m;
}

export function parseIpXfrmPolicies(text: string): IpPolicy[] {
  const out: IpPolicy[] = [];
  let cur: IpPolicy | undefined;
  let tmpl: IpPolicy['templates'][number] | undefined;
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    const depth = raw.length - raw.replace(/^\t+/, '').length;
    const tokens = raw.trim().split(/\s+/);
    if (depth === 0) {
      const p = pairs(tokens);
      cur = { src: p.get('src')!, dst: p.get('dst')!, dir: '', action: 'allow', priority: 0, templates: [] };
      if (p.has('proto')) cur.proto = p.get('proto')!;
      if (p.has('sport')) cur.sport = Number(p.get('sport'));
      if (p.has('dport')) cur.dport = Number(p.get('dport'));
      out.push(cur);
      tmpl = undefined;
      continue;
    }
    if (!cur) throw new Error(`Unexpected line before any policy: ${raw}`);
    if (depth === 1) {
      const head = tokens[0];
      if (head === 'dir') {
        const p = pairs(tokens);
        cur.dir = p.get('dir')!;
        cur.action = p.get('action') ?? 'allow';
        cur.priority = Number(p.get('priority') ?? 0);
      } else if (head === 'mark') {
        const [v, m] = tokens[1]!.split('/');
        cur.mark = { value: Number(v), mask: Number(m) };
      } else if (head === 'if_id') {
        cur.ifId = Number(tokens[1]);
      } else if (head === 'tmpl') {
        const p = pairs(tokens.slice(1));
        tmpl = { src: p.get('src')!, dst: p.get('dst')!, proto: '', reqid: 0, mode: '', optional: false };
        cur.templates.push(tmpl);
      }
      continue;
    }
    if (tmpl) {
      if (tokens[0] === 'level') {
        tmpl.optional = tokens[1] === 'use';
        continue;
      }
      const p = pairs(tokens);
      if (p.has('proto')) tmpl.proto = p.get('proto')!;
      if (p.has('spi')) tmpl.spi = Number(p.get('spi'));
      if (p.has('reqid')) tmpl.reqid = Number(p.get('reqid'));
      if (p.has('mode')) tmpl.mode = p.get('mode')!;
    }
  }
  return out;
}

export async function ipXfrmPolicies(netns: string): Promise<IpPolicy[]> {
  const r = await run('ip', ['-n', netns, 'xfrm', 'policy', 'list']);
  return parseIpXfrmPolicies(r.stdout);
}

export async function ipXfrmStateText(netns: string): Promise<string> {
  return (await run('ip', ['-n', netns, 'xfrm', 'state', 'list'])).stdout;
}

/** Fails with install advice when iproute2 is missing, instead of skipping. */
export async function requireIp(): Promise<void> {
  try {
    await run('ip', ['-V']);
  } catch (err) {
    throw new Error('The XFRM privileged tests need "ip" from iproute2: apt-get install iproute2', { cause: err });
  }
}
