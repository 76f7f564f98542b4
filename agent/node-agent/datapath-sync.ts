/**
 * Cluster model → this node's eBPF maps, in one serialised pass (kicked by store changes and
 * WireGuard peer changes, and by a resync timer):
 *
 * - identities: each pod's label set (agent/cluster/pod-identity.ts) is looked up in the
 *   allocator's mapping (the operator allocates; agents only read). A local pod with an identity
 *   gets a reference refs/<id>/<node> on the node's lease (so the identity is never released
 *   while the pod runs); references of identities no local pod uses any more are withdrawn.
 * - policy: the cluster's NetworkPolicies (parsed per manifest revision; a bad one is reported
 *   and skipped) are compiled against every pod identity (agent/policy) and then into
 *   veil_policy entries (agent/datapath/policy-compile.ts); isolated identities set the
 *   endpoints' ENFORCE flags. ipBlock prefixes get node-local CIDR identities
 *   (local-cidr-identities.ts) that the CIDR rules' entries reference.
 * - endpoints: every local pod with an identity, keyed by its host-side interface, found from the
 *   per-pod route the CNI (here the lab) installs (`ip route get POD_IP` → dev). Programs are
 *   attached to the interface after its endpoint entry exists, so its first packet is judged
 *   with the right identity.
 * - ipcache: local pods (LOCAL|POD), remote pods (POD, their node's tunnel endpoint and steering
 *   channel), every remote node's pod CIDRs (POD, identity "world" until the pod is known: traffic
 *   to a pod this node has not learned yet still goes into the tunnel, never out in clear), and
 *   node addresses (NODE), ipBlock prefixes outside the pod network (their CIDR identity, LPM
 *   tier unless a host prefix).
 * - config: mode, strict flag, the channel devices' ifindexes (0 until they are up: remote pod
 *   traffic is then dropped with "no-tunnel", never leaked).
 * - key slots: WireGuard mode writes each remote node's steering channel into its ipcache
 *   entries' key_slot. IPsec mode writes the remote node key generation its SAs use (mod 4) there
 *   and each endpoint's identity key sending generation (mod 4) into key_generation; from-pod
 *   combines both into the SA's key slot. Both come from what the SA reconciler installed, so a
 *   slot is written only after its SAs exist (docs/datapath.md).
 *
 * Every map is brought to the desired content by difference (set what differs, delete what is
 * no longer wanted): a restarted agent rewrites nothing that is right.
 */
import type { ClusterClient } from '../cluster/client.js';
import { podLabelSet } from '../cluster/pod-identity.js';
import type { ClusterNode } from '../cluster/records.js';
import { MapsAbi, type DatapathConfig, type EndpointValue, type IpcacheValue, type PolicyKey, type PolicyValue } from '../datapath/layout.js';
import type { IdentityAllocator } from '../identity/allocator.js';
import type { LabelSet } from '../identity/labels.js';
import type { IdentityReferences } from '../identity/references.js';
import { RESERVED_IDENTITIES, reservedName } from '../identity/reserved.js';
import type { Logger } from '../log/logger.js';
import { listRoutes } from '../netlink/route.js';
import { compilePolicies } from '../policy/compiler.js';
import type { NetworkPolicy } from '../policy/network-policy.js';
import { parsePolicies } from '../policy/policy-file.js';
import type { Lease } from '../store/store.js';
import { LocalCidrIdentities } from './local-cidr-identities.js';
import type { NodeDatapath } from './node-datapath.js';

export interface DatapathSyncOptions {
  node: string;
  cluster: ClusterClient;
  allocator: IdentityAllocator;
  references: IdentityReferences;
  /** The node's lease (references are attached to it). */
  lease: Lease;
  datapath: NodeDatapath;
  strict: boolean;
  /** Encryption mode: selects the config flag and how key slots are written. */
  mode: 'wireguard' | 'ipsec';
  wireguardPort: number;
  /** The channel devices' ifindexes, or null while they are not up. */
  wireguardIfindexes(): [number, number] | null;
  /**
   * The ipcache key_slot of `node`'s pods and pod CIDRs, or null (→ 0) when it is not a peer yet:
   * WireGuard, the steering channel; IPsec, the node key generation (mod 4) its installed SAs use.
   */
  steering(node: string): number | null;
  /** IPsec mode: the sending generation (mod 4) of a local identity's key with installed SAs, or null. */
  keyGeneration?(identity: number): number | null;
  log: Logger;
}

export interface DatapathSyncReport {
  localPods: number;
  /** Identities of the local pods (ascending): the identities hosted on this node. */
  localIdentities: number[];
  /** Local pods without an identity yet or without a host interface. */
  waiting: string[];
  endpoints: number;
  ipcache: number;
  policyEntries: number;
  /** Distinct ipBlock prefixes with a node-local identity, and those inside the pod network (not installed). */
  cidrPrefixes: number;
  cidrInPodNetwork: string[];
  /** Policies that could not be parsed ("namespace/name: reason"). */
  badPolicies: string[];
  seconds: number;
}

const HOST = RESERVED_IDENTITIES.host;
const WORLD = RESERVED_IDENTITIES.world;
const REMOTE_NODE = RESERVED_IDENTITIES['remote-node'];

function hostPrefix(ip: string): string {
  return ip.includes(':') ? `${ip}/128` : `${ip}/32`;
}

/** "namespace:app=web,tier=db" from a canonical label set (veil:namespace and the k8s: labels). */
function labelSummary(set: LabelSet): string {
  let ns = '';
  const pod: string[] = [];
  for (const [k, v] of set.entries) {
    if (k === 'veil:namespace') ns = v;
    else if (k.startsWith('k8s:')) pod.push(`${k.slice(4)}=${v}`);
  }
  return `${ns}:${pod.join(',')}`;
}

const policyKeyId = (k: PolicyKey) => `${k.subject}/${k.peer}/${k.dport}/${k.proto}/${k.direction}`;
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export class DatapathSync {
  readonly #o: DatapathSyncOptions & { lease: Lease };
  readonly #policyCache = new Map<string, { revision: string; policies: NetworkPolicy[] | Error }>();
  readonly #referenced = new Map<number, LabelSet>();
  readonly #cidr = new LocalCidrIdentities();
  /** Cluster identity → "namespace:k=v,..." as of the last pass (for event displays). */
  #identityText = new Map<number, string>();
  #adoptedCidr = false;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #last: DatapathSyncReport | undefined;
  #onPass: ((r: DatapathSyncReport) => void) | undefined;
  #onError: ((err: Error) => void) | undefined;

  constructor(opts: DatapathSyncOptions) {
    this.#o = opts;
  }

  get lastReport(): DatapathSyncReport | undefined {
    return this.#last;
  }

  /**
   * What an identity stands for, for displays (events): "reserved:world", "cidr:198.51.100.0/24",
   * "default:app=web" (namespace and pod labels); undefined when unknown.
   */
  describeIdentity(id: number): string | undefined {
    const reserved = reservedName(id);
    if (reserved) return `reserved:${reserved}`;
    const prefix = this.#cidr.prefixOf(id);
    if (prefix) return `cidr:${prefix}`;
    return this.#identityText.get(id);
  }

  onPass(fn: (r: DatapathSyncReport) => void): void {
    this.#onPass = fn;
  }

  onError(fn: (err: Error) => void): void {
    this.#onError = fn;
  }

  kick(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        try {
          await this.#pass();
        } catch (err) {
          this.#o.log.warn({ err }, 'Datapath sync pass failed; retrying at the next change or resync');
          this.#onError?.(err as Error);
        }
      } while (this.#again && !this.#stopped);
    })().finally(() => {
      this.#running = undefined;
    });
  }

  /** Runs a pass now (after a running one); throws when it fails. */
  async pass(): Promise<DatapathSyncReport> {
    while (this.#running) await this.#running;
    const p = this.#pass();
    this.#running = p.then(() => undefined, () => undefined);
    try {
      return await p;
    } finally {
      this.#running = undefined;
    }
  }

  /** The node lease was replaced: references are written again on the new one at the next pass. */
  resetReferences(lease: Lease): void {
    this.#o.lease = lease;
    this.#referenced.clear();
    this.kick();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    while (this.#running) await this.#running;
  }

  async #pass(): Promise<DatapathSyncReport> {
    const t0 = performance.now();
    const o = this.#o;
    const me = o.node;
    const [nodes, namespaces, pods, policies] = await Promise.all([
      o.cluster.list('nodes'),
      o.cluster.list('namespaces'),
      o.cluster.list('pods'),
      o.cluster.list('policies'),
    ]);
    const nsLabels = new Map(namespaces.items.map((x) => [x.record.name, x.record.labels]));
    const nodeList = nodes.items.map((x) => x.record).sort((a, b) => a.name.localeCompare(b.name));
    const nodeIndex = new Map(nodeList.map((n, i) => [n.name, i + 1]));
    const nodeByName = new Map<string, ClusterNode>(nodeList.map((n) => [n.name, n]));

    // Identities of every pod (one lookup per label set).
    const byHash = new Map<string, { id: number; set: LabelSet } | null>();
    const podIdentity = new Map<string, { id: number; set: LabelSet } | null>();
    for (const { record: pod } of pods.items) {
      const set = podLabelSet(pod, nsLabels);
      if (!byHash.has(set.hash)) {
        const rec = await o.allocator.lookupByLabels(set);
        byHash.set(set.hash, rec && rec.state === 'active' ? { id: rec.id, set } : null);
      }
      podIdentity.set(`${pod.namespace}/${pod.name}`, byHash.get(set.hash)!);
    }

    const identityText = new Map<number, string>();
    for (const v of byHash.values()) if (v) identityText.set(v.id, labelSummary(v.set));
    this.#identityText = identityText;

    // References for local identities.
    const localIds = new Map<number, LabelSet>();
    for (const { record: pod } of pods.items) {
      const ident = podIdentity.get(`${pod.namespace}/${pod.name}`);
      if (pod.node === me && ident) localIds.set(ident.id, ident.set);
    }
    for (const [id, set] of localIds) {
      if (this.#referenced.has(id)) continue;
      await o.references.addReference(id, set, me, o.lease);
      this.#referenced.set(id, set);
    }
    for (const id of [...this.#referenced.keys()]) {
      if (localIds.has(id)) continue;
      await o.references.removeReference(id, me);
      this.#referenced.delete(id);
    }

    // Policy.
    const badPolicies: string[] = [];
    const parsed: NetworkPolicy[] = [];
    const seen = new Set<string>();
    for (const obj of policies.items) {
      seen.add(obj.key);
      let c = this.#policyCache.get(obj.key);
      if (!c || c.revision !== obj.modRevision) {
        let result: NetworkPolicy[] | Error;
        try {
          result = parsePolicies(obj.record.manifest, { source: `${obj.record.namespace}/${obj.record.name}` });
        } catch (err) {
          result = err as Error;
          o.log.warn({ err, policy: `${obj.record.namespace}/${obj.record.name}` }, 'Ignoring a NetworkPolicy that does not parse');
        }
        c = { revision: obj.modRevision, policies: result };
        this.#policyCache.set(obj.key, c);
      }
      if (c.policies instanceof Error) badPolicies.push(`${obj.record.namespace}/${obj.record.name}: ${c.policies.message}`);
      else parsed.push(...c.policies);
    }
    for (const k of [...this.#policyCache.keys()]) if (!seen.has(k)) this.#policyCache.delete(k);
    const identityPairs: [number, LabelSet][] = [];
    for (const v of byHash.values()) if (v) identityPairs.push([v.id, v.set]);
    const compilation = compilePolicies(parsed, identityPairs, { hostIdentity: HOST });
    // ipBlock: CIDR identities (adopting a previous agent's numbers once), then identity rules.
    if (!this.#adoptedCidr) {
      this.#cidr.adopt(await o.datapath.ipcache.entries());
      this.#adoptedCidr = true;
    }
    const { entries, plan: cidrPlan } = this.#cidr.compile(compilation, nodeList.flatMap((n) => n.podCidrs));
    const enforcement = new Map(compilation.enforcement.map((e) => [e.identity, e]));

    // Desired endpoints and ipcache.
    const routes = await listRoutes({ table: 254 });
    const devOf = new Map<string, { ifindex: number; dev: string }>();
    for (const r of routes) if (r.ifindex !== null && r.dev !== null) devOf.set(r.dst, { ifindex: r.ifindex, dev: r.dev });
    const endpoints = new Map<number, { value: EndpointValue; dev: string }>();
    const ipcache = new Map<string, IpcacheValue>();
    const waiting: string[] = [];
    let localPods = 0;
    for (const { record: pod } of pods.items) {
      const name = `${pod.namespace}/${pod.name}`;
      const ident = podIdentity.get(name);
      const local = pod.node === me;
      if (local) localPods++;
      if (!ident) {
        if (local) waiting.push(`${name}: no identity yet`);
        continue;
      }
      if (local) {
        const v4 = pod.addresses.find((a) => !a.includes(':'));
        const v6 = pod.addresses.find((a) => a.includes(':'));
        const route = pod.addresses.map((a) => devOf.get(hostPrefix(a))).find((x) => x !== undefined);
        if (!route) {
          waiting.push(`${name}: no route to its addresses`);
          continue;
        }
        const e = enforcement.get(ident.id);
        const flags = (e?.ingress ? MapsAbi.EP_F_ENFORCE_INGRESS : 0) | (e?.egress ? MapsAbi.EP_F_ENFORCE_EGRESS : 0);
        const generation = o.keyGeneration?.(ident.id) ?? 0;
        endpoints.set(route.ifindex, {
          value: { identity: ident.id, flags, ...(v4 ? { ipv4: v4 } : {}), ...(v6 ? { ipv6: v6 } : {}), ...(generation !== 0 ? { keyGeneration: generation } : {}) },
          dev: route.dev,
        });
        for (const a of pod.addresses) ipcache.set(hostPrefix(a), { identity: ident.id, nodeIndex: 0, keySlot: 0, flags: MapsAbi.IPC_F_LOCAL | MapsAbi.IPC_F_POD });
      } else {
        const n = nodeByName.get(pod.node);
        if (!n || n.addresses.length === 0) continue;
        const slot = o.steering(pod.node) ?? 0;
        for (const a of pod.addresses) {
          ipcache.set(hostPrefix(a), { identity: ident.id, nodeIndex: nodeIndex.get(n.name)!, keySlot: slot, flags: MapsAbi.IPC_F_POD, tunnelEndpoint: n.addresses[0]! });
        }
      }
    }
    for (const n of nodeList) {
      const local = n.name === me;
      for (const a of n.addresses) {
        ipcache.set(hostPrefix(a), local
          ? { identity: HOST, nodeIndex: 0, keySlot: 0, flags: MapsAbi.IPC_F_LOCAL | MapsAbi.IPC_F_NODE }
          : { identity: REMOTE_NODE, nodeIndex: nodeIndex.get(n.name)!, keySlot: 0, flags: MapsAbi.IPC_F_NODE });
      }
      if (local) continue;
      const slot = o.steering(n.name) ?? 0;
      for (const cidr of n.podCidrs) {
        if (!ipcache.has(cidr)) ipcache.set(cidr, { identity: WORLD, nodeIndex: nodeIndex.get(n.name)!, keySlot: slot, flags: MapsAbi.IPC_F_POD, tunnelEndpoint: n.addresses[0] ?? '0.0.0.0' });
      }
    }

    // Pod and node addresses and pod CIDRs win over an ipBlock prefix written the same way.
    for (const [prefix, v] of cidrPlan.ipcache) if (!ipcache.has(prefix)) ipcache.set(prefix, v);

    const dp = o.datapath;
    // Config first: the programs need it for everything else.
    const ifx = o.wireguardIfindexes();
    const config: DatapathConfig = {
      flags: (o.mode === 'ipsec' ? MapsAbi.CFG_F_MODE_IPSEC : MapsAbi.CFG_F_MODE_WIREGUARD) | (o.strict ? MapsAbi.CFG_F_STRICT : 0),
      wireguardIfindex: o.mode === 'wireguard' ? (ifx ?? [0, 0]) : [0, 0],
      nodeIdentity: HOST,
      wireguardPort: o.wireguardPort,
      nodeIndex: nodeIndex.get(me) ?? 0,
    };
    if (!same(await dp.config.get(), config)) await dp.config.set(config);

    // ipcache: add and change, then remove.
    const haveIpc = new Map(await dp.ipcache.entries());
    const ipcSet = [...ipcache].filter(([k, v]) => !same(haveIpc.get(k), v));
    if (ipcSet.length > 0) await dp.ipcache.setMany(ipcSet);
    const ipcGone = [...haveIpc.keys()].filter((k) => !ipcache.has(k));
    if (ipcGone.length > 0) await dp.ipcache.deleteMany(ipcGone);

    // Policy: add and change, then remove.
    const wantPol = new Map(entries.map((e) => [policyKeyId(e.key), e]));
    const havePol = new Map((await dp.policy.entries()).map(([k, v]) => [policyKeyId(k), { key: k, value: v }]));
    const polSet: [PolicyKey, PolicyValue][] = [];
    for (const [id, e] of wantPol) if (!same(havePol.get(id)?.value, e.value)) polSet.push([e.key, e.value]);
    if (polSet.length > 0) await dp.policy.setMany(polSet);
    const polGone = [...havePol].filter(([id]) => !wantPol.has(id)).map(([, e]) => e.key);
    if (polGone.length > 0) await dp.policy.deleteMany(polGone);

    // Endpoints: entry first, then the programs.
    const haveEp = new Map(await dp.endpoints.entries());
    for (const [ifindex, { value, dev }] of endpoints) {
      const have = haveEp.get(ifindex);
      const want = { ...value, flags: value.flags | (value.ipv4 ? MapsAbi.EP_F_HAS_IPV4 : 0) | (value.ipv6 ? MapsAbi.EP_F_HAS_IPV6 : 0) };
      if (!same(have, want)) await dp.endpoints.set(ifindex, value);
      if (!dp.attached.has(ifindex)) await dp.attachPod(ifindex, dev);
    }
    for (const ifindex of haveEp.keys()) {
      if (endpoints.has(ifindex)) continue;
      await dp.endpoints.delete(ifindex);
      await dp.forgetPod(ifindex);
    }

    const report: DatapathSyncReport = {
      localPods,
      localIdentities: [...localIds.keys()].sort((a, b) => a - b),
      waiting,
      endpoints: endpoints.size,
      ipcache: ipcache.size,
      policyEntries: entries.length,
      cidrPrefixes: cidrPlan.identities.size,
      cidrInPodNetwork: cidrPlan.inPodNetwork,
      badPolicies,
      seconds: (performance.now() - t0) / 1000,
    };
    this.#last = report;
    this.#onPass?.(report);
    return report;
  }
}
