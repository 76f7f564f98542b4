/**
 * The policy front end's failure kinds. Every error names where the bad value is: the file (or
 * other source), the document in it (1-based, as editors count YAML documents), the item of a
 * `kind: List`, the policy when its name is known, and the field path
 * (`spec.ingress[0].ports[1].port`) — so the operator can go straight to the line and fix it.
 */
import { VeilError } from '../errors.js';

export const POLICY_INVALID = 'VEIL_POLICY_INVALID';
export const POLICY_UNSUPPORTED = 'VEIL_POLICY_UNSUPPORTED';
export const POLICY_FILE = 'VEIL_POLICY_FILE';

/** Where in the input a policy (or a part of it) came from. */
export interface PolicyLocation {
  /** File name or another label for the input ("<stdin>"). */
  source: string;
  /** 1-based YAML document number in the source. */
  document: number;
  /** 0-based index in `items` when the document is a `kind: List`. */
  item?: number;
  /** "namespace/name" once the metadata was read. */
  policy?: string;
}

/** Human text for a location: `"p.yaml" document 2 item 0 (NetworkPolicy "shop/web")`. */
export function describeLocation(at: PolicyLocation): string {
  let s = `${JSON.stringify(at.source)} document ${at.document}`;
  if (at.item !== undefined) s += ` item ${at.item}`;
  if (at.policy !== undefined) s += ` (NetworkPolicy ${JSON.stringify(at.policy)})`;
  return s;
}

/** The input is not a valid NetworkPolicy (syntax, schema, values, limits). */
export class PolicyInputError extends VeilError {
  readonly location: PolicyLocation;
  /** Dotted field path inside the document; "" for the document as a whole. */
  readonly path: string;

  constructor(location: PolicyLocation, path: string, problem: string, options?: { cause?: unknown; code?: string }) {
    const where = path === '' ? describeLocation(location) : `${describeLocation(location)} field "${path}"`;
    super(options?.code ?? POLICY_INVALID, `Invalid NetworkPolicy in ${where}: ${problem}`, options);
    this.location = { ...location };
    this.path = path;
  }
}

/** Valid Kubernetes that Veil does not implement (named ports, selectors on volatile labels). */
export class PolicyUnsupportedError extends PolicyInputError {
  constructor(location: PolicyLocation, path: string, problem: string) {
    super(location, path, problem, { code: POLICY_UNSUPPORTED });
  }
}

/** A policy file could not be read (missing, unreadable, not a regular file). */
export class PolicyFileError extends VeilError {
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super(POLICY_FILE, message, options);
    this.path = path;
  }
}
