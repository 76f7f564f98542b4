/**
 * Kubernetes label selectors (metav1.LabelSelector): matchLabels and matchExpressions with In,
 * NotIn, Exists and DoesNotExist, validated as the API server validates them, and matched
 * against a label map. All requirements are ANDed; an empty selector matches everything.
 *
 * Selectors on volatile labels (pod-template-hash, ...) are refused: identities never carry
 * those labels (agent/identity/labels.ts), so such a selector could not mean what it says.
 */
import { checkLabelKey, checkLabelValue, VOLATILE_LABEL_KEYS } from '../identity/labels.js';
import { quote } from '../store/validate.js';
import { at, InputReader, join } from './input-reader.js';

export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
const OPERATORS: readonly SelectorOperator[] = ['In', 'NotIn', 'Exists', 'DoesNotExist'];

/** Most matchLabels entries and most matchExpressions of one selector. */
export const MAX_SELECTOR_TERMS = 64;

export interface SelectorRequirement {
  readonly key: string;
  readonly operator: SelectorOperator;
  /** Sorted, without duplicates; empty for Exists and DoesNotExist. */
  readonly values: readonly string[];
}

export interface LabelSelector {
  /** matchLabels as In requirements with one value, then matchExpressions; sorted by key. */
  readonly requirements: readonly SelectorRequirement[];
  /** Canonical text: equal for selectors that mean the same thing (used to share match results). */
  readonly key: string;
}

/** A label map as selectors see it. */
export type Labels = ReadonlyMap<string, string>;

export const MATCH_ALL: LabelSelector = Object.freeze({ requirements: Object.freeze([]), key: '{}' });

function validKey(r: InputReader, path: string, key: unknown): string {
  if (typeof key !== 'string') throw r.fail(path, `label key must be a string, got ${quote(key)}`);
  r.check(path, () => checkLabelKey(path, key));
  if (VOLATILE_LABEL_KEYS.has(key)) {
    throw r.unsupported(path, `label ${quote(key)} changes per pod or per rollout and is not part of any Veil identity: select on stable labels such as "app"`);
  }
  return key;
}

function validValue(r: InputReader, path: string, key: string, value: unknown): string {
  return r.check(path, () => checkLabelValue(path, key, value));
}

/** Reads and validates a LabelSelector at `path`. */
export function parseLabelSelector(r: InputReader, value: unknown, path: string): LabelSelector {
  const obj = r.object(value ?? {}, path, ['matchLabels', 'matchExpressions']);
  const reqs: SelectorRequirement[] = [];
  const ml = r.get(obj, 'matchLabels');
  if (ml !== undefined && ml !== null) {
    const mlPath = join(path, 'matchLabels');
    for (const [k, v] of r.stringMap(ml, mlPath, MAX_SELECTOR_TERMS)) {
      const p = join(mlPath, k);
      reqs.push({ key: validKey(r, p, k), operator: 'In', values: [validValue(r, p, k, v)] });
    }
  }
  const me = r.get(obj, 'matchExpressions');
  if (me !== undefined) {
    const mePath = join(path, 'matchExpressions');
    r.array(me, mePath, MAX_SELECTOR_TERMS).forEach((item, i) => {
      const p = at(mePath, i);
      const e = r.object(item, p, ['key', 'operator', 'values']);
      const key = validKey(r, join(p, 'key'), r.get(e, 'key'));
      const op = r.get(e, 'operator');
      if (typeof op !== 'string' || !OPERATORS.includes(op as SelectorOperator)) {
        throw r.fail(join(p, 'operator'), `operator ${quote(op)} is not one of In, NotIn, Exists, DoesNotExist (case matters)`);
      }
      const operator = op as SelectorOperator;
      const rawValues = r.get(e, 'values');
      const vPath = join(p, 'values');
      const values = rawValues === undefined ? [] : r.array(rawValues, vPath).map((v, j) => validValue(r, at(vPath, j), key, v));
      if ((operator === 'In' || operator === 'NotIn') && values.length === 0) {
        throw r.fail(vPath, `operator ${operator} needs at least one value: list the values, or use ${operator === 'In' ? 'Exists' : 'DoesNotExist'}`);
      }
      if ((operator === 'Exists' || operator === 'DoesNotExist') && values.length > 0) {
        throw r.fail(vPath, `operator ${operator} takes no values: remove "values", or use ${operator === 'Exists' ? 'In' : 'NotIn'}`);
      }
      reqs.push({ key, operator, values: [...new Set(values)].sort() });
    });
  }
  return makeSelector(reqs);
}

function makeSelector(reqs: SelectorRequirement[]): LabelSelector {
  const sorted = reqs
    .map((q) => Object.freeze({ key: q.key, operator: q.operator, values: Object.freeze([...q.values]) }))
    .sort((a, b) => cmp(a.key, b.key) || cmp(a.operator, b.operator) || cmp(a.values.join('\0'), b.values.join('\0')));
  if (sorted.length === 0) return MATCH_ALL;
  return Object.freeze({ requirements: Object.freeze(sorted), key: JSON.stringify(sorted.map((q) => [q.key, q.operator, q.values])) });
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** True when `labels` satisfy every requirement of `selector`. */
export function selectorMatches(selector: LabelSelector, labels: Labels): boolean {
  for (const q of selector.requirements) {
    const v = labels.get(q.key);
    switch (q.operator) {
      case 'In':
        if (v === undefined || !q.values.includes(v)) return false;
        break;
      case 'NotIn':
        if (v !== undefined && q.values.includes(v)) return false;
        break;
      case 'Exists':
        if (v === undefined) return false;
        break;
      case 'DoesNotExist':
        if (v !== undefined) return false;
        break;
    }
  }
  return true;
}
