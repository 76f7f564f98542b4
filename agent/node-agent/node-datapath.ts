/**
 * The node's eBPF datapath as the agent runs it: the four programs loaded once (maps pinned under
 * the pin directory, so a restarted agent finds endpoints, ipcache, policy, conntrack, config and
 * counters as they were), uplink programs on the uplink, from-pod / to-pod on every local pod's
 * host-side interface. Attachments are pinned links (or clsact filters) that stay when the agent
 * exits: traffic keeps flowing, encrypted, while it restarts; the next agent's attach replaces the
 * program in place (docs/datapath.md §Attaching). Nothing here removes datapath state on stop.
 */
import { stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigMap } from '../datapath/config-map.js';
import { Counters } from '../datapath/counters.js';
import { attach, detach, loadObject, type BpfObject } from '../datapath/datapath.js';
import { hasCode } from '../errors.js';
import { openEndpointMap, type EndpointMap } from '../datapath/endpoints.js';
import { EventReader, type DatapathEvent } from '../datapath/events.js';
import { Ipcache } from '../datapath/ipcache.js';
import { openPolicyMap, type PolicyMap } from '../datapath/policy-map.js';
import type { Logger } from '../log/logger.js';
import { projectRoot } from '../project-root.js';

export const PROGRAMS = {
  fromPod: { object: 'from-pod.bpf.o', program: 'veil_from_pod_prog' },
  toPod: { object: 'to-pod.bpf.o', program: 'veil_to_pod_prog' },
  uplinkEgress: { object: 'uplink-egress.bpf.o', program: 'veil_uplink_egress_prog' },
  uplinkIngress: { object: 'uplink-ingress.bpf.o', program: 'veil_uplink_ingress_prog' },
} as const;

type ProgramName = keyof typeof PROGRAMS;

export interface NodeDatapathOptions {
  pinDir: string;
  /** Directory of the compiled objects (default build/bpf of the checkout). */
  objectsDir?: string;
  log: Logger;
}

export class NodeDatapath {
  readonly #objects: Map<ProgramName, BpfObject>;
  readonly #pinDir: string;
  readonly #log: Logger;
  readonly config: ConfigMap;
  readonly endpoints: EndpointMap;
  readonly ipcache: Ipcache;
  readonly policy: PolicyMap;
  readonly counters: Counters;
  /** ifindex → name of the pod interfaces this agent attached to. */
  readonly attached = new Map<number, string>();

  private constructor(objects: Map<ProgramName, BpfObject>, maps: { config: ConfigMap; endpoints: EndpointMap; ipcache: Ipcache; policy: PolicyMap; counters: Counters }, pinDir: string, log: Logger) {
    this.#objects = objects;
    this.#pinDir = pinDir;
    this.#log = log;
    this.config = maps.config;
    this.endpoints = maps.endpoints;
    this.ipcache = maps.ipcache;
    this.policy = maps.policy;
    this.counters = maps.counters;
  }

  /** Loads the programs (pinned maps re-used) and opens the maps. */
  static async load(opts: NodeDatapathOptions): Promise<NodeDatapath> {
    const dir = opts.objectsDir ?? join(projectRoot(), 'build', 'bpf');
    const objects = new Map<ProgramName, BpfObject>();
    try {
      let first: BpfObject | undefined;
      for (const [name, p] of Object.entries(PROGRAMS) as [ProgramName, (typeof PROGRAMS)[ProgramName]][]) {
        // The event ring buffer is not pinned: the objects share the first object's.
        const obj = await loadObject(join(dir, p.object), {
          pinDir: opts.pinDir,
          programs: [p.program],
          ...(first ? { reuseMaps: { veil_events: first.map('veil_events') } } : {}),
        });
        first ??= obj;
        objects.set(name, obj);
      }
      const src = first!;
      const [config, endpoints, ipcache, policy, counters] = await Promise.all([
        ConfigMap.open(src),
        openEndpointMap(src),
        Ipcache.open(src),
        openPolicyMap(src),
        Counters.open(src),
      ]);
      opts.log.info({ pinDir: opts.pinDir, programs: Object.keys(PROGRAMS) }, 'Loaded datapath programs');
      return new NodeDatapath(objects, { config, endpoints, ipcache, policy, counters }, opts.pinDir, opts.log);
    } catch (err) {
      for (const o of objects.values()) o.close();
      throw err;
    }
  }

  /** Starts reading the programs' event ring buffer (shared by the four objects; one reader per agent). */
  readEvents(onEvent: (e: DatapathEvent) => void): EventReader {
    return EventReader.open(this.#objects.get('fromPod')!.map('veil_events'), { onEvent });
  }

  #program(name: ProgramName) {
    return this.#objects.get(name)!.program(PROGRAMS[name].program);
  }

  /** Strict-mode programs on the uplink: egress drops plaintext pod packets leaving, ingress arriving. */
  async attachUplink(uplink: string): Promise<void> {
    const opts = { pinDir: this.#pinDir };
    const e = await attach(this.#program('uplinkEgress'), { interface: uplink, direction: 'egress' }, opts);
    const i = await attach(this.#program('uplinkIngress'), { interface: uplink, direction: 'ingress' }, opts);
    this.#log.info({ uplink, egress: e.action, ingress: i.action, mode: e.mode }, 'Attached uplink programs');
  }

  /** from-pod on the pod interface's ingress (what the pod sends), to-pod on its egress. */
  async attachPod(ifindex: number, name: string): Promise<void> {
    const opts = { pinDir: this.#pinDir };
    const f = await attach(this.#program('fromPod'), { interface: ifindex, direction: 'ingress' }, opts);
    const t = await attach(this.#program('toPod'), { interface: ifindex, direction: 'egress' }, opts);
    if (!this.attached.has(ifindex)) this.#log.info({ interface: name, ifindex, fromPod: f.action, toPod: t.action }, 'Attached pod programs');
    this.attached.set(ifindex, name);
  }

  /**
   * A pod is gone (its endpoint entry was removed): detaches from-pod / to-pod when its interface
   * still exists; when it is gone with the pod's namespace, removes the link pins it left (the
   * links are defunct; their pins would otherwise stay until the ifindex is reused). Pin names
   * are the addon's: `<pinDir>/links/<netns inode>-<ifindex>-<direction>` (bpf-attach.cc).
   */
  async forgetPod(ifindex: number): Promise<void> {
    this.attached.delete(ifindex);
    try {
      await detach({ interface: ifindex, direction: 'ingress' }, { pinDir: this.#pinDir });
      await detach({ interface: ifindex, direction: 'egress' }, { pinDir: this.#pinDir });
      return;
    } catch (err) {
      if (!hasCode(err, 'ENODEV')) throw err;
    }
    const ino = (await stat('/proc/self/ns/net')).ino;
    for (const dir of ['ingress', 'egress']) {
      await unlink(join(this.#pinDir, 'links', `${ino}-${ifindex}-${dir}`)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
    this.#log.info({ ifindex }, 'Removed the pins of a gone pod interface');
  }

  /** Closes the agent's file descriptors; attachments and pinned maps stay in the kernel. */
  close(): void {
    for (const o of this.#objects.values()) o.close();
  }
}
