/**
 * The IPsec SA reconciler: remote node records in, XFRM states and policies out (the plan of
 * ipsec-plan.ts), through the addon only. Follows the Reconciler contract (reconciler.ts):
 *
 * - adopt(): lists the kernel's states and policies that carry Veil's reqid (and the block
 *   policies on the encrypt mark), so later updates change only differences and a restarted
 *   agent re-creates nothing; installs the lowest-priority block policies when they are missing.
 * - update(node, record): plans the node and applies the difference, make-before-break: new
 *   states (inbound first), then new and changed policies, then removed policies, then removed
 *   states. When a step fails, the states this call added are removed again and the error says
 *   so; nothing installed before the call is touched.
 * - delete(node): removes what was installed for the node. prune(): removes Veil objects that no
 *   node accounts for; the caller invokes it only after every source synced.
 * - setLocal(local): the local node's keys or identities changed (rotation, a new identity with
 *   endpoints here); re-plans every node.
 * - resync(): reads the kernel again and re-creates whatever went missing (periodic job).
 */
import type { Logger } from '../log/logger.js';
import { SpiAllocator } from '../keys/spi.js';
import { addPolicies, deletePolicies, listPolicies, updatePolicies } from '../xfrm/policy.js';
import { addStates, deleteStates, listStates } from '../xfrm/state.js';
import type { XfrmPolicyId, XfrmStateId } from '../xfrm/types.js';
import {
  diffIpsec,
  isEmpty,
  kernelPolicyKey,
  kernelPolicyObject,
  kernelStateKey,
  kernelStateObject,
  plannedPolicyObject,
  plannedStateObject,
  type IpsecChanges,
  type KernelObject,
} from './ipsec-diff.js';
import { resolveIpsecOptions, validateLocalNode, type IpsecOptions, type LocalIpsecNode, type RemoteIpsecNode } from './ipsec-desired.js';
import { IpsecReconcileError } from './ipsec-errors.js';
import { ANY_ENCRYPT_MARK } from './ipsec-marks.js';
import { blockPolicies, planNode, type NodePlan } from './ipsec-plan.js';
import type { Reconciler } from './reconciler.js';

export interface IpsecReconcilerDeps {
  log: Logger;
  /** Network namespace of the node (the lab and tests); default: the agent's own. */
  netns?: string;
  options?: Partial<IpsecOptions>;
}

/** Counts for `veil status` and metrics. */
export interface IpsecCounts {
  nodes: number;
  inStates: number;
  outStates: number;
  policies: number;
  spiCollisions: number;
}

interface Owned {
  states: Set<string>;
  policies: Set<string>;
  inboundSpis: Set<number>;
  plan: NodePlan;
}

export class IpsecReconciler implements Reconciler<RemoteIpsecNode> {
  readonly name = 'ipsec-sas';
  readonly options: IpsecOptions;
  private local: LocalIpsecNode;
  private readonly log: Logger;
  private readonly xo: { netns?: string };
  private readonly spis = new SpiAllocator();
  private readonly kernelStates = new Map<string, KernelObject<XfrmStateId>>();
  private readonly kernelPolicies = new Map<string, KernelObject<XfrmPolicyId>>();
  private readonly records = new Map<string, RemoteIpsecNode>();
  private readonly owned = new Map<string, Owned>();
  private adopted = false;
  /** Serialises kernel changes: one update at a time. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(local: LocalIpsecNode, deps: IpsecReconcilerDeps) {
    this.options = resolveIpsecOptions(deps.options);
    this.local = validateLocalNode(local);
    this.log = deps.log.child({ reconciler: this.name });
    this.xo = deps.netns === undefined ? {} : { netns: deps.netns };
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private isOurPolicy(p: { templates: { reqid: number }[]; action: unknown; mark: { value: number; mask: number } | null; priority: number }): boolean {
    if (p.templates.some((t) => t.reqid === this.options.reqid)) return true;
    return p.action === 'block' && p.priority === this.options.blockPriority && p.mark?.value === ANY_ENCRYPT_MARK.value && p.mark.mask === ANY_ENCRYPT_MARK.mask;
  }

  /** Reads Veil's states and policies from the kernel into the diff's view of it. */
  private async readKernel(): Promise<void> {
    const [states, policies] = await Promise.all([listStates({ reqid: this.options.reqid }, this.xo), listPolicies(undefined, this.xo)]);
    this.kernelStates.clear();
    this.kernelPolicies.clear();
    for (const s of states) if (s.proto === 'esp') this.kernelStates.set(kernelStateKey(s), kernelStateObject(s));
    for (const p of policies) if (typeof p.dir === 'string' && this.isOurPolicy(p)) this.kernelPolicies.set(kernelPolicyKey(p), kernelPolicyObject(p));
  }

  /** Installs the block policies when missing: first, and they stay (they keep swaps from leaking). */
  private async ensureBlockPolicies(): Promise<void> {
    const block = blockPolicies(this.options);
    await this.apply('', diffIpsec({ states: [], policies: block }, { states: this.kernelStates, policies: this.kernelPolicies }, { states: [], policies: [] }));
  }

  adopt(): Promise<void> {
    return this.serial(async () => {
      await this.readKernel();
      this.adopted = true;
      this.log.info({ states: this.kernelStates.size, policies: this.kernelPolicies.size }, 'Adopted IPsec kernel state');
      await this.ensureBlockPolicies();
    });
  }

  /**
   * Reads the kernel again and re-applies every node's plan: re-creates what someone else removed
   * (a hard-expired SA, an operator's `ip xfrm state flush`) instead of trusting a stale view
   * (cilium#39720: stale states never re-created). The agent runs it as a periodic job.
   */
  resync(): Promise<void> {
    return this.serial(async () => {
      this.requireAdopted('resync IPsec SAs');
      await this.readKernel();
      await this.ensureBlockPolicies();
      for (const [node, record] of this.records) await this.reconcileNode(node, record);
    });
  }

  private requireAdopted(op: string): void {
    if (!this.adopted) throw new IpsecReconcileError('', `Cannot ${op} before adopt(): the reconciler has not read the kernel's IPsec state yet; call adopt() first`);
  }

  update(node: string, record: RemoteIpsecNode): Promise<void> {
    return this.serial(async () => {
      this.requireAdopted(`update IPsec SAs of node "${node}"`);
      if (record.name !== node) {
        throw new IpsecReconcileError(node, `Cannot install IPsec SAs for node "${node}" from a record of node "${record.name}": the store key and the record disagree; fix the publisher`);
      }
      if (node === this.local.name) return;
      this.records.set(node, record);
      await this.reconcileNode(node, record);
    });
  }

  delete(node: string): Promise<void> {
    return this.serial(async () => {
      this.requireAdopted(`delete IPsec SAs of node "${node}"`);
      this.records.delete(node);
      const owned = this.owned.get(node);
      if (!owned) return;
      const changes = diffIpsec({ states: [], policies: [] }, { states: this.kernelStates, policies: this.kernelPolicies }, owned);
      await this.apply(node, changes);
      for (const spi of owned.inboundSpis) this.spis.release(spi);
      this.owned.delete(node);
    });
  }

  prune(): Promise<void> {
    return this.serial(async () => {
      this.requireAdopted('prune IPsec SAs');
      const keepStates = new Set<string>();
      const keepPolicies = new Set(blockPolicies(this.options).map((p) => p.key));
      for (const o of this.owned.values()) {
        for (const k of o.states) keepStates.add(k);
        for (const k of o.policies) keepPolicies.add(k);
      }
      const stale = {
        states: [...this.kernelStates.keys()].filter((k) => !keepStates.has(k)),
        policies: [...this.kernelPolicies.keys()].filter((k) => !keepPolicies.has(k)),
      };
      if (stale.states.length + stale.policies.length === 0) return;
      this.log.info({ states: stale.states.length, policies: stale.policies.length }, 'Pruning IPsec objects no node accounts for');
      await this.apply('', diffIpsec({ states: [], policies: [] }, { states: this.kernelStates, policies: this.kernelPolicies }, stale));
    });
  }

  /** The local node changed (keys rotated, identities came or went): re-plans every node. */
  setLocal(local: LocalIpsecNode): Promise<void> {
    return this.serial(async () => {
      this.local = validateLocalNode(local);
      if (!this.adopted) return;
      for (const [node, record] of this.records) await this.reconcileNode(node, record);
    });
  }

  /**
   * The key slot the datapath must write into the encrypt mark for traffic of `identity` (0 in
   * per-node-pair mode) to `node` over `family`: the SA of the sending generation and the
   * node's newest key. Undefined when no SA to that node exists.
   */
  sendingSlot(identity: number, node: string, family: 4 | 6 = 4): number | undefined {
    return this.owned.get(node)?.plan.sendingSlots.find((s) => s.identity === identity && s.family === family)?.slot;
  }

  /** The plan last applied for `node` (what `veil status` shows; no key material is exposed by callers). */
  planOf(node: string): NodePlan | undefined {
    return this.owned.get(node)?.plan;
  }

  counts(): IpsecCounts {
    let inStates = 0;
    let outStates = 0;
    let policies = 0;
    let spiCollisions = 0;
    for (const o of this.owned.values()) {
      for (const s of o.plan.states) {
        if (s.direction === 'in') inStates++;
        else outStates++;
        if (s.spiCollision) spiCollisions++;
      }
      policies += o.policies.size;
    }
    return { nodes: this.owned.size, inStates, outStates, policies, spiCollisions };
  }

  private async reconcileNode(node: string, record: RemoteIpsecNode): Promise<void> {
    let plan: NodePlan;
    try {
      plan = planNode(this.local, record, this.options, (r) => this.spis.allocate(r));
    } catch (err) {
      throw new IpsecReconcileError(node, `Cannot plan IPsec SAs for node "${node}": ${(err as Error).message}; nothing was changed in the kernel`, { cause: err });
    }
    for (const s of plan.states) {
      if (s.spiCollision) {
        this.log.error(
          { node, spi: s.config.spi, candidate: s.spiCollision.candidate, identity: s.identity },
          'Inbound SPI collided on this node; the sender will use the candidate SPI until node records can publish the chosen one',
        );
      }
    }
    const before = this.owned.get(node);
    const owned = before ?? { states: new Set<string>(), policies: new Set<string>(), inboundSpis: new Set<number>(), plan };
    const changes = diffIpsec(plan, { states: this.kernelStates, policies: this.kernelPolicies }, owned);
    await this.apply(node, changes);
    const inbound = new Set(plan.states.filter((s) => s.direction === 'in').map((s) => s.config.spi));
    for (const spi of owned.inboundSpis) if (!inbound.has(spi)) this.spis.release(spi);
    this.owned.set(node, {
      states: new Set(plan.states.map((s) => s.key)),
      policies: new Set(plan.policies.map((p) => p.key)),
      inboundSpis: inbound,
      plan,
    });
  }

  /** Applies changes in make-before-break order; see the file comment for what a failure leaves. */
  private async apply(node: string, c: IpsecChanges): Promise<void> {
    if (isEmpty(c)) return;
    const who = node ? `node "${node}"` : 'this node';
    const added: XfrmStateId[] = [];
    try {
      if (c.addStates.length > 0) {
        await addStates(c.addStates.map((s) => s.config), this.xo);
        for (const s of c.addStates) {
          const o = plannedStateObject(s);
          this.kernelStates.set(s.key, o);
          added.push(o.id);
        }
      }
      for (const r of c.replaceStates) {
        await deleteStates([r.old], { ...this.xo, ignoreMissing: true });
        this.kernelStates.delete(r.planned.key);
        await addStates([r.planned.config], this.xo);
        this.kernelStates.set(r.planned.key, plannedStateObject(r.planned));
      }
      if (c.addPolicies.length > 0) {
        await addPolicies(c.addPolicies.map((p) => p.config), this.xo);
        for (const p of c.addPolicies) this.kernelPolicies.set(p.key, plannedPolicyObject(p));
      }
      if (c.updatePolicies.length > 0) {
        await updatePolicies(c.updatePolicies.map((p) => p.config), this.xo);
        for (const p of c.updatePolicies) this.kernelPolicies.set(p.key, plannedPolicyObject(p));
      }
    } catch (err) {
      let undo = '';
      if (added.length > 0) {
        try {
          await deleteStates(added, { ...this.xo, ignoreMissing: true });
          for (const s of c.addStates) this.kernelStates.delete(s.key);
          undo = `; the ${added.length} states added by this call were removed again`;
        } catch (e2) {
          undo = `; removing the ${added.length} states added by this call failed too (${(e2 as Error).message})`;
        }
      }
      throw new IpsecReconcileError(node, `Cannot install IPsec SAs for ${who}: ${(err as Error).message}${undo}; what was installed before is unchanged`, { cause: err });
    }
    try {
      if (c.deletePolicies.length > 0) {
        await deletePolicies(c.deletePolicies.map((d) => d.id), { ...this.xo, ignoreMissing: true });
        for (const d of c.deletePolicies) this.kernelPolicies.delete(d.key);
      }
      if (c.deleteStates.length > 0) {
        await deleteStates(c.deleteStates.map((d) => d.id), { ...this.xo, ignoreMissing: true });
        for (const d of c.deleteStates) this.kernelStates.delete(d.key);
      }
    } catch (err) {
      throw new IpsecReconcileError(node, `Cannot remove retired IPsec SAs of ${who}: ${(err as Error).message}; the new SAs are installed, retry to remove the old ones`, { cause: err });
    }
    this.log.info(
      {
        node: node || undefined,
        addedStates: c.addStates.length,
        replacedStates: c.replaceStates.length,
        deletedStates: c.deleteStates.length,
        addedPolicies: c.addPolicies.length,
        updatedPolicies: c.updatePolicies.length,
        deletedPolicies: c.deletePolicies.length,
      },
      'Applied IPsec changes',
    );
  }
}
