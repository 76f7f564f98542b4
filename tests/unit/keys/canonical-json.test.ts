import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../agent/errors.js';
import { canonicalJson, canonicalJsonBytes } from '../../../agent/keys/canonical-json.js';

describe('canonicalJson()', () => {
  it('sorts members, keeps array order and writes no whitespace', () => {
    expect(canonicalJson({ b: 1, a: [3, 1, { z: null, y: true }], c: 'x' })).toBe('{"a":[3,1,{"y":true,"z":null}],"b":1,"c":"x"}');
    expect(canonicalJson({})).toBe('{}');
    expect(canonicalJson([])).toBe('[]');
  });

  it('orders keys by UTF-16 code units and escapes strings as JSON.stringify does', () => {
    expect(canonicalJson({ é: 1, z: 2, Z: 3, '': 4, '10': 5, '9': 6 })).toBe('{"":4,"10":5,"9":6,"Z":3,"z":2,"é":1}');
    expect(canonicalJson('a"b\\c\n\u0001\ud800')).toBe('"a\\"b\\\\c\\n\\u0001\\ud800"');
    expect(canonicalJsonBytes({ k: 'ü' })).toEqual(Buffer.from('{"k":"ü"}', 'utf8'));
  });

  it('writes safe integers only, -0 as 0', () => {
    expect(canonicalJson([0, -0, -5, Number.MAX_SAFE_INTEGER])).toBe('[0,0,-5,9007199254740991]');
    for (const bad of [1.5, NaN, Infinity, 2 ** 53]) expect(() => canonicalJson({ n: bad })).toThrow(ValidationError);
    expect(() => canonicalJson({ n: 1.5 })).toThrow('Cannot write "value.n" as canonical JSON: the number 1.5 is not a safe integer; only integers are allowed');
  });

  it('refuses values outside JSON and nesting deeper than 32', () => {
    for (const bad of [undefined, 1n, () => 1, Symbol('s'), new Date(0), Buffer.from('x'), new Map()]) {
      expect(() => canonicalJson({ v: bad })).toThrow(ValidationError);
    }
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = [deep];
    expect(() => canonicalJson(deep)).toThrow(/nested deeper than 32/);
  });

  it('is independent of member insertion order and parses back to an equal value', () => {
    const json = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: 'small' },
        fc.constant(null),
        fc.boolean(),
        fc.maxSafeInteger(),
        fc.string({ unit: 'grapheme' }),
        fc.array(tie('value'), { maxLength: 4 }),
        fc.dictionary(fc.string(), tie('value'), { maxKeys: 4 }),
      ),
    })).value;
    const shuffle = (v: unknown): unknown => {
      if (Array.isArray(v)) return v.map(shuffle);
      if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, shuffle(x)]));
      return v;
    };
    fc.assert(
      fc.property(json, (v) => {
        const text = canonicalJson(v);
        expect(canonicalJson(shuffle(v))).toBe(text);
        expect(canonicalJson(JSON.parse(text))).toBe(text);
        expect(text).not.toMatch(/^\s|\s$/);
      }),
    );
  });
});
