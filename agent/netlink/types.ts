/**
 * Options shared by every rtnetlink call. Each call opens its own netlink socket inside the
 * target namespace (the worker thread enters it only for socket()), so concurrent calls for
 * different namespaces never interfere.
 */
export interface NetnsOption {
  /** A name under /run/netns or an absolute path (/proc/PID/ns/net); omitted = caller's namespace. */
  netns?: string;
}

/** Options of delete verbs that reconcilers call repeatedly. */
export interface DeleteOptions extends NetnsOption {
  /** Treat objects that are already gone as deleted (ESRCH/ENOENT) and carry on with the rest. */
  ignoreMissing?: boolean;
}
