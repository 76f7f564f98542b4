/**
 * Conversion of the addon's raw read-backs (plain objects built in native/src/xfrm.cc from
 * kernel messages) into the typed XfrmState / XfrmPolicy of types.ts.
 */
import type {
  XfrmAction,
  XfrmDir,
  XfrmMarkInfo,
  XfrmMode,
  XfrmPolicy,
  XfrmProto,
  XfrmSelectorInfo,
  XfrmState,
  XfrmTemplateInfo,
} from './types.js';
import { IPPROTO_ESP } from './validate.js';

const AF_INET = 2;
const AF_INET6 = 10;

type RawSelector = Omit<XfrmSelectorInfo, 'family'> & { family: number };
interface RawAlg {
  name: string;
  keyBits: number;
  icvBits?: number;
  truncBits?: number;
}
export interface RawState {
  family: number;
  src: string | null;
  dst: string | null;
  spi: number;
  proto: number;
  mode: number;
  reqid: number;
  flags: number;
  esn: boolean;
  replayWindow: number;
  mark: XfrmMarkInfo | null;
  setMark: XfrmMarkInfo | null;
  ifId: number | null;
  aead: RawAlg | null;
  crypt: RawAlg | null;
  auth: RawAlg | null;
  selector: RawSelector;
  lifetime: XfrmState['lifetime'];
  current: { bytes: bigint; packets: bigint; addTime: bigint; useTime: bigint };
  stats: { replayWindow: number; replay: number; integrityFailed: number };
  replay: { oseq: number; seq: number; oseqHi: number; seqHi: number };
}
interface RawTemplate {
  family: number;
  src: string | null;
  dst: string | null;
  spi: number;
  proto: number;
  mode: number;
  reqid: number;
  optional: boolean;
}
export interface RawPolicy {
  selector: RawSelector;
  dir: number;
  action: number;
  priority: number;
  index: number;
  mark: XfrmMarkInfo | null;
  ifId: number | null;
  templates: RawTemplate[];
}

const fam = (f: number): 4 | 6 | 0 => (f === AF_INET ? 4 : f === AF_INET6 ? 6 : 0);
const protoName = (p: number): XfrmProto | number => (p === IPPROTO_ESP ? 'esp' : p);
const modeName = (m: number): XfrmMode | number => (m === 0 ? 'transport' : m === 1 ? 'tunnel' : m);
const dirName = (d: number): XfrmDir | number => (['in', 'out', 'fwd'] as const)[d] ?? d;
const actionName = (a: number): XfrmAction | number => (['allow', 'block'] as const)[a] ?? a;

export function decodeSelector(s: RawSelector): XfrmSelectorInfo {
  return { ...s, family: fam(s.family) };
}

export function decodeState(r: RawState): XfrmState {
  const seq64 = (hi: number, lo: number) => (BigInt(hi) << 32n) | BigInt(lo);
  return {
    family: fam(r.family) === 6 ? 6 : 4,
    src: r.src ?? '',
    dst: r.dst ?? '',
    spi: r.spi,
    proto: protoName(r.proto),
    mode: modeName(r.mode),
    reqid: r.reqid,
    mark: r.mark,
    setMark: r.setMark,
    ifId: r.ifId,
    replayWindow: r.replayWindow,
    esn: r.esn,
    flags: r.flags,
    aead: r.aead ? { algorithm: r.aead.name, keyBits: r.aead.keyBits, icvBits: r.aead.icvBits ?? 0 } : null,
    crypt: r.crypt ? { algorithm: r.crypt.name, keyBits: r.crypt.keyBits } : null,
    auth: r.auth ? { algorithm: r.auth.name, keyBits: r.auth.keyBits, truncBits: r.auth.truncBits ?? 0 } : null,
    selector: decodeSelector(r.selector),
    lifetime: r.lifetime,
    stats: {
      bytes: r.current.bytes,
      packets: r.current.packets,
      addTime: r.current.addTime,
      useTime: r.current.useTime,
      replayWindowDrops: r.stats.replayWindow,
      replayDrops: r.stats.replay,
      integrityFailures: r.stats.integrityFailed,
      outboundSeq: seq64(r.replay.oseqHi, r.replay.oseq),
      inboundSeq: seq64(r.replay.seqHi, r.replay.seq),
      replayWindow: r.replayWindow,
      esn: r.esn,
    },
  };
}

export function decodePolicy(r: RawPolicy): XfrmPolicy {
  return {
    dir: dirName(r.dir),
    selector: decodeSelector(r.selector),
    priority: r.priority,
    action: actionName(r.action),
    index: r.index,
    mark: r.mark,
    ifId: r.ifId,
    templates: r.templates.map(
      (t): XfrmTemplateInfo => ({
        family: fam(t.family),
        src: t.src,
        dst: t.dst,
        proto: protoName(t.proto),
        spi: t.spi,
        reqid: t.reqid,
        mode: modeName(t.mode),
        optional: t.optional,
      }),
    ),
  };
}
