/**
 * Node-local CIDR identities for NetworkPolicy ipBlock (docs/policy.md "ipBlock"). Every prefix
 * the compiled CIDR rules mention (each `cidr` and each `except`) gets an identity of its own,
 * installed in the ipcache's LPM tier, so that an address resolves to the identity of the
 * longest prefix containing it and the policy map can stay keyed by identities.
 *
 * The identities are node-local, as Cilium's are: no store round trip, no cluster-wide state to
 * garbage-collect, and no packet ever carries one (they name addresses outside the cluster, never
 * a sender a mark or an SA could speak for). They live in a 24-bit space of their own above the
 * cluster ids: LOCAL_IDENTITY_SCOPE (1 << 24) + n, n ≥ 1.
 *
 * Numbers are handed out monotonically and never reused while the agent runs, so an identity a
 * policy entry still mentions never names another prefix in between two map writes. A restarted
 * agent adopts the numbers it finds in the ipcache (the maps are pinned) and continues after the
 * highest: nothing is renumbered, no policy entry is rewritten.
 *
 * Prefixes inside a node's pod CIDR are not installed: the pod network is selected by pod and
 * namespace selectors, and an LPM entry there would shadow the pod CIDR's tunnel entry (traffic to
 * a pod this node has not learned yet must still go into the tunnel). Kubernetes leaves ipBlock on
 * pod addresses implementation-defined; this is Veil's definition. Pod and node addresses are in
 * the ipcache's host tier and win over any prefix for the same reason.
 */
import { ValidationError } from '../errors.js';
import { canonicalCidr, cidrContains, formatCidr, type Cidr } from '../net/ip.js';
import type { IpcacheValue } from '../datapath/layout.js';
import { compilePolicy, type PolicyEntry } from '../datapath/policy-compile.js';
import { cidrPrefixes, withCidrIdentities } from '../policy/cidr-identities.js';
import type { PolicyCompilation } from '../policy/compiler.js';

/** First identity of the node-local space (not itself an identity). */
export const LOCAL_IDENTITY_SCOPE = 0x0100_0000;
export const MAX_LOCAL_IDENTITY = 0x01ff_ffff;

export function isLocalIdentity(id: number): boolean {
  return Number.isInteger(id) && id > LOCAL_IDENTITY_SCOPE && id <= MAX_LOCAL_IDENTITY;
}

export interface CidrIdentityPlan {
  /** Every prefix of the rules → its identity (installed or not; rules need one for each). */
  identities: Map<string, number>;
  /** ipcache entries to install: prefix → value. */
  ipcache: Map<string, IpcacheValue>;
  /** Prefixes not installed because they lie inside a pod CIDR. */
  inPodNetwork: string[];
}

export class LocalCidrIdentities {
  readonly #byPrefix = new Map<string, number>();
  readonly #byId = new Map<number, string>();
  #next = LOCAL_IDENTITY_SCOPE + 1;

  /**
   * Takes over the numbers of node-local entries already in the ipcache (a restarted agent).
   * Entries with other identities are ignored; call before the first plan().
   */
  adopt(entries: Iterable<readonly [string, IpcacheValue]>): number {
    let n = 0;
    for (const [prefix, v] of entries) {
      if (!isLocalIdentity(v.identity) || this.#byId.has(v.identity)) continue;
      const key = formatCidr(canonicalCidr('prefix', prefix));
      if (this.#byPrefix.has(key)) continue;
      this.#byPrefix.set(key, v.identity);
      this.#byId.set(v.identity, key);
      this.#next = Math.max(this.#next, v.identity + 1);
      n++;
    }
    return n;
  }

  /**
   * The identities and ipcache entries for exactly `prefixes` (as cidrPrefixes() lists them);
   * prefixes no longer wanted lose their identity. `podCidrs`: every node's pod CIDRs.
   */
  plan(prefixes: readonly Cidr[], podCidrs: readonly string[]): CidrIdentityPlan {
    const pods = podCidrs.map((c) => canonicalCidr('podCidr', c));
    const identities = new Map<string, number>();
    const ipcache = new Map<string, IpcacheValue>();
    const inPodNetwork: string[] = [];
    for (const p of prefixes) {
      const key = formatCidr(p);
      let id = this.#byPrefix.get(key);
      if (id === undefined) {
        id = this.#allocate();
        this.#byPrefix.set(key, id);
        this.#byId.set(id, key);
      }
      identities.set(key, id);
      if (pods.some((pc) => cidrContains(pc, p))) inPodNetwork.push(key);
      else ipcache.set(key, { identity: id, nodeIndex: 0, keySlot: 0, flags: 0 });
    }
    for (const [key, id] of [...this.#byPrefix]) {
      if (identities.has(key)) continue;
      this.#byPrefix.delete(key);
      this.#byId.delete(id);
    }
    return { identities, ipcache, inPodNetwork };
  }

  /** The prefix a node-local identity stands for ("10.0.0.0/8"), if it is one of ours. */
  prefixOf(id: number): string | undefined {
    return this.#byId.get(id);
  }

  /**
   * A policy compilation → policy map entries, CIDR rules included: the rules' prefixes get their
   * identities (plan()) and the CIDR rules become rules on those identities. The plan's ipcache
   * entries must be installed with the entries (host and pod entries win over them).
   */
  compile(compilation: PolicyCompilation, podCidrs: readonly string[]): { entries: PolicyEntry[]; plan: CidrIdentityPlan } {
    const plan = this.plan(cidrPrefixes(compilation.cidrRules), podCidrs);
    const rules = withCidrIdentities(compilation, (p) => plan.identities.get(formatCidr(p))!);
    return { entries: compilePolicy(rules, compilation.enforcement), plan };
  }

  #allocate(): number {
    if (this.#next > MAX_LOCAL_IDENTITY) {
      // 16M allocations in one agent's life: restart from the lowest free number.
      this.#next = LOCAL_IDENTITY_SCOPE + 1;
      while (this.#byId.has(this.#next) && this.#next <= MAX_LOCAL_IDENTITY) this.#next++;
      if (this.#next > MAX_LOCAL_IDENTITY) {
        throw new ValidationError('prefixes', `Cannot give an ipBlock prefix a node-local identity: all ${MAX_LOCAL_IDENTITY - LOCAL_IDENTITY_SCOPE} are in use; reduce the number of distinct ipBlock prefixes`);
      }
    }
    return this.#next++;
  }
}
