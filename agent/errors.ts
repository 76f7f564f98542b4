/**
 * Veil's error hierarchy: one base class with a stable string `code` and a `cause`, one subclass
 * per failure kind. Messages start with a capital letter, have no trailing period, quote values,
 * and say the current state and the fix. They never contain key material.
 */
export class VeilError extends Error {
  /** Stable machine-readable code, e.g. `EINVAL`, `EEXIST`, `VEIL_CONFIG`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An argument failed validation before anything was sent to the kernel. */
export class ValidationError extends VeilError {
  readonly field: string;

  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super('EINVAL', message, options);
    this.field = field;
  }
}

/** The user's configuration (flags, environment, file) is invalid. */
export class ConfigError extends VeilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VEIL_CONFIG', message, options);
  }
}

/** A required system component (kernel feature, binary, file) is missing. */
export class MissingDependencyError extends VeilError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('VEIL_MISSING_DEPENDENCY', message, options);
  }
}

/**
 * A netlink (or other kernel) operation failed. `code` is the errno name (`EEXIST`, `ENODEV`,
 * or `EDUMPINTR` for an interrupted dump), `op` the operation (`route.add`), `extack` the
 * kernel's extended-ack text when it sent one, `index` the failing object in a batch.
 */
export class NetlinkError extends VeilError {
  readonly errno: number;
  readonly op: string;
  readonly extack: string | undefined;
  readonly index: number | undefined;

  constructor(
    fields: { code: string; errno: number; op: string; extack?: string; index?: number },
    message: string,
    options?: { cause?: unknown },
  ) {
    super(fields.code, message, options);
    this.errno = fields.errno;
    this.op = fields.op;
    this.extack = fields.extack;
    this.index = fields.index;
  }
}

/** A WireGuard userspace (UAPI) peer process reported an error or misbehaved. */
export class UapiError extends VeilError {
  readonly errno: number;
  constructor(code: string, errno: number, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.errno = errno;
  }
}

/** True for any Veil error with the given code. */
export function hasCode(err: unknown, code: string): boolean {
  return err instanceof VeilError && err.code === code;
}
