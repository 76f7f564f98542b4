/**
 * Where the key lifecycle lives in the store (docs/keys.md §Rotation as implemented). Every key
 * is written by exactly one node:
 *
 *   <prefix>nodes/<node>                        signed node record       written by <node>
 *   <prefix>keys/acks/<owner>/<peer>            peer acknowledgement     written by <peer>
 *   <prefix>keys/rotate/<node>/node             rotation request         written by `veil keys rotate`,
 *   <prefix>keys/rotate/<node>/identity/<id>                             deleted by <node> when it starts
 *   <prefix>locks/node-key-rotation             rotation lease (WireGuard) held by the rotating node
 */
import { ValidationError } from '../errors.js';
import { isNodeName } from './node-record.js';
import type { KeySlot } from './rotation.js';

export const DEFAULT_KEY_STORE_PREFIX = '/veil/';

export type SlotRef = Pick<KeySlot, 'kind' | 'identity'>;

function checkNode(node: string): string {
  if (!isNodeName(node)) throw new ValidationError('node', `Invalid node name ${JSON.stringify(node).slice(0, 80)}: use a Kubernetes node name such as "worker-1"`);
  return node;
}

export class KeyStorePaths {
  constructor(readonly prefix: string = DEFAULT_KEY_STORE_PREFIX) {
    if (typeof prefix !== 'string' || !prefix.startsWith('/') || !prefix.endsWith('/') || prefix.length > 256) {
      throw new ValidationError('prefix', `Invalid store prefix ${JSON.stringify(prefix)}: use an absolute path ending in "/", e.g. "${DEFAULT_KEY_STORE_PREFIX}"`);
    }
  }

  recordsPrefix(): string {
    return `${this.prefix}nodes/`;
  }
  record(node: string): string {
    return `${this.recordsPrefix()}${checkNode(node)}`;
  }
  /** The node a record key belongs to, or undefined when the key is not "<records>/<node name>". */
  recordNode(key: string): string | undefined {
    const rest = key.startsWith(this.recordsPrefix()) ? key.slice(this.recordsPrefix().length) : '';
    return isNodeName(rest) ? rest : undefined;
  }

  /** Acknowledgements of `owner`'s keys, one key per peer. */
  acksOf(owner: string): string {
    return `${this.prefix}keys/acks/${checkNode(owner)}/`;
  }
  ack(owner: string, peer: string): string {
    return `${this.acksOf(owner)}${checkNode(peer)}`;
  }

  /** The cluster-wide node key rotation lease (rotation-lock.ts). */
  rotationLock(): string {
    return `${this.prefix}locks/node-key-rotation`;
  }

  rotateRequestsOf(node: string): string {
    return `${this.prefix}keys/rotate/${checkNode(node)}/`;
  }
  rotateRequest(node: string, slot: SlotRef): string {
    return `${this.rotateRequestsOf(node)}${slot.kind === 'node' ? 'node' : `identity/${slot.identity}`}`;
  }
  /** The slot a rotation request key names, or undefined. */
  rotateRequestSlot(node: string, key: string): SlotRef | undefined {
    const base = this.rotateRequestsOf(node);
    if (!key.startsWith(base)) return undefined;
    const rest = key.slice(base.length);
    if (rest === 'node') return { kind: 'node', identity: 0 };
    const m = /^identity\/([1-9][0-9]{0,4})$/.exec(rest);
    const id = m ? Number(m[1]) : 0;
    return id >= 1 && id <= 65535 ? { kind: 'identity', identity: id } : undefined;
  }
}

/** "node key" / "identity 4242 key", for messages. */
export function slotLabel(slot: SlotRef): string {
  return slot.kind === 'node' ? 'node key' : `identity ${slot.identity} key`;
}

export function slotId(slot: SlotRef): string {
  return slot.kind === 'node' ? 'node' : `identity/${slot.identity}`;
}
