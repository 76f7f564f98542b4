import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { MissingDependencyError, NetlinkError, VeilError } from '../errors.js';
import { projectRoot } from '../project-root.js';

/**
 * The raw addon: untyped functions exported by native/src/*.cc. Only the wrappers in
 * agent/netlink/, agent/wireguard/ and agent/xfrm/ call it; they validate arguments first.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type RawAddon = Record<string, (...args: any[]) => any>;

let addon: RawAddon | undefined;

/** Loads build/Release/veil_native.node once. */
export function native(): RawAddon {
  if (addon) return addon;
  const path = join(projectRoot(), 'build', 'Release', 'veil_native.node');
  if (!existsSync(path)) {
    throw new MissingDependencyError(
      `Native addon "${path}" is not built: run "npm install" (or "npm run build") in the checkout`,
    );
  }
  addon = createRequire(import.meta.url)(path) as RawAddon;
  return addon;
}

interface NativeErrorShape {
  message?: string;
  code?: string;
  errno?: number;
  op?: string;
  detail?: string;
  extack?: string;
  index?: number;
}

/**
 * Converts an error thrown or rejected by the addon into a NetlinkError (or a ValidationError-like
 * NetlinkError with code EINVAL). `context` is prepended to the message (what the caller tried).
 */
export function toNetlinkError(err: unknown, context?: string): VeilError {
  if (err instanceof VeilError) return err;
  const e = (err ?? {}) as NativeErrorShape;
  if (typeof e.code !== 'string' || typeof e.op !== 'string') {
    return new VeilError('EIO', `${context ?? 'Native call'} failed: ${String((err as Error)?.message ?? err)}`, {
      cause: err,
    });
  }
  const detail = e.detail ?? e.message ?? 'failed';
  // The addon's own text may already name the operation the caller describes: say it once.
  let message = context ? (detail.startsWith(context) ? detail : `${context}: ${detail}`) : `${e.op}: ${detail}`;
  if (e.extack) message += ` (kernel: ${e.extack})`;
  if (typeof e.index === 'number') message += ` [object ${e.index}]`;
  return new NetlinkError(
    { code: e.code, errno: e.errno ?? 0, op: e.op, ...(e.extack ? { extack: e.extack } : {}), ...(typeof e.index === 'number' ? { index: e.index } : {}) },
    message,
    { cause: err },
  );
}

/**
 * Awaits an addon promise and converts its failure into a NetlinkError whose stack is the
 * caller's (the addon's own stack would end at the completion callback).
 */
export async function callNative<T>(context: string, run: () => Promise<T>): Promise<T> {
  const site: { stack?: string } = {};
  Error.captureStackTrace(site, callNative);
  try {
    return await run();
  } catch (err) {
    const converted = toNetlinkError(err, context);
    if (site.stack) converted.stack = `${converted.name}: ${converted.message}\n${site.stack.split('\n').slice(1).join('\n')}`;
    throw converted;
  }
}

/** Synchronous variant for encode/parse exports. */
export function callNativeSync<T>(context: string, run: () => T): T {
  try {
    return run();
  } catch (err) {
    throw toNetlinkError(err, context);
  }
}
