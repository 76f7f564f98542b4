/**
 * The TypeScript mirror of the datapath ABI agrees with the C headers: every #define of marks.h,
 * reasons.h and maps.h has its TS twin with the same value (and the other way round), and every
 * struct layout matches the BTF clang emitted for a fixture that uses all of them.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { btfStructLayout } from '../../../../agent/datapath/datapath.js';
import { LAYOUTS, MapsAbi } from '../../../../agent/datapath/layout.js';
import * as marks from '../../../../agent/datapath/marks.js';
import * as reasons from '../../../../agent/datapath/reasons.js';
import { projectRoot } from '../../../../agent/project-root.js';
import { fixtureObject } from '../../../support/bpf.js';

/** #define VEIL_NAME value, evaluating (1u << n) and hex/decimal literals with a u suffix. */
function defines(header: string): Map<string, number> {
  const text = readFileSync(join(projectRoot(), 'bpf', 'include', 'veil', header), 'utf8');
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^#define[ \t]+VEIL_([A-Z0-9_]+)[ \t]+(.+?)[ \t]*(?:\/\*.*)?$/gm)) {
    const expr = m[2]!.trim();
    const shift = /^\((\d+)u?\s*<<\s*(\d+)\)$/.exec(expr);
    const lit = /^(0x[0-9a-fA-F]+|\d+)u?$/.exec(expr);
    if (shift) out.set(m[1]!, Number(shift[1]) << Number(shift[2]));
    else if (lit) out.set(m[1]!, Number(lit[1]));
    else if (out.has(expr.replace(/^VEIL_/, ''))) out.set(m[1]!, out.get(expr.replace(/^VEIL_/, ''))!);
    else if (!m[1]!.endsWith('_H')) throw new Error(`Cannot evaluate #define VEIL_${m[1]} ${expr}`);
  }
  return out;
}

describe('marks.h mirror', () => {
  it('every define has the same value in marks.ts', () => {
    const d = defines('marks.h');
    const ts: Record<string, number> = {
      MARK_PURPOSE_MASK: marks.MARK_PURPOSE_MASK,
      MARK_PURPOSE_SHIFT: marks.MARK_PURPOSE_SHIFT,
      MARK_IDENTITY_MASK: marks.MARK_IDENTITY_MASK,
      MARK_IDENTITY_SHIFT: marks.MARK_IDENTITY_SHIFT,
      MARK_KEY_SLOT_MASK: marks.MARK_KEY_SLOT_MASK,
      MARK_KEY_SLOT_SHIFT: marks.MARK_KEY_SLOT_SHIFT,
      MARK_MATCH_MASK: marks.MARK_MATCH_MASK,
      ...Object.fromEntries(Object.entries(marks.MarkPurpose).map(([k, v]) => [`MARK_${k}`, v])),
    };
    expect(Object.fromEntries([...d].map(([k, v]) => [k, v >>> 0]))).toEqual(Object.fromEntries(Object.entries(ts).map(([k, v]) => [k, v >>> 0])));
  });
});

describe('reasons.h mirror', () => {
  it('every reason and hook has the same value in reasons.ts, and nothing extra', () => {
    const d = defines('reasons.h');
    const ts: Record<string, number> = {
      ...Object.fromEntries(Object.entries(reasons.Reason).map(([k, v]) => [k, v])),
      FWD_MAX: reasons.FWD_MAX,
      DROP_MAX: reasons.DROP_MAX,
      REASON_MAX: reasons.REASON_MAX,
      ...Object.fromEntries(Object.entries(reasons.Hook).map(([k, v]) => [`HOOK_${k}`, v])),
      HOOK_MAX: reasons.HOOK_MAX,
    };
    expect(Object.fromEntries(d)).toEqual(ts);
  });

  it('forwarding reasons stay below FWD_MAX and drops between FWD_MAX and DROP_MAX', () => {
    for (const [name, v] of Object.entries(reasons.Reason)) {
      if (name.startsWith('FWD_')) expect(v).toBeLessThanOrEqual(reasons.FWD_MAX);
      else expect(v > reasons.FWD_MAX && v <= reasons.DROP_MAX).toBe(true);
    }
  });
});

describe('maps.h mirror', () => {
  it('every define has the same value in layout.ts MapsAbi', () => {
    expect(Object.fromEntries(defines('maps.h'))).toEqual({ ...MapsAbi });
  });

  it('every struct matches the BTF of the compiled fixture (size, member offsets and sizes)', () => {
    const obj = fixtureObject('loader-fixture');
    const header = readFileSync(join(projectRoot(), 'bpf', 'include', 'veil', 'maps.h'), 'utf8');
    const structs = [...header.matchAll(/^struct (veil_[a-z0-9_]+) \{/gm)].map((m) => m[1]!).sort();
    expect(Object.keys(LAYOUTS).sort()).toEqual(structs);
    for (const [name, l] of Object.entries(LAYOUTS)) {
      const btf = btfStructLayout(obj, name);
      expect({ name, size: btf.size }).toEqual({ name, size: l.size });
      const fromBtf = Object.fromEntries(btf.members.map((m) => [m.name, { offset: m.offset, size: m.size }]));
      expect({ name, fields: fromBtf }).toEqual({ name, fields: l.fields });
      expect(btf.members.every((m) => m.bitSize === 0)).toBe(true);
    }
  });

  it('the size comment of every struct in maps.h states the real size', () => {
    const header = readFileSync(join(projectRoot(), 'bpf', 'include', 'veil', 'maps.h'), 'utf8');
    for (const m of header.matchAll(/^struct (veil_[a-z0-9_]+) \{[\s\S]*?^\}; \/\* (\d+) bytes/gm)) {
      expect({ struct: m[1], size: Number(m[2]) }).toEqual({ struct: m[1], size: LAYOUTS[m[1] as keyof typeof LAYOUTS].size });
    }
  });
});
