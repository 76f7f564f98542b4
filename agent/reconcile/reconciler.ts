/**
 * The shape every reconciler of the agent has (STYLE.md): desired state arrives from the store as
 * `update` and `delete` calls keyed by the object's name; the reconciler diffs against what the
 * kernel has and changes only the difference. `prune` removes kernel state that no desired object
 * accounts for — the caller invokes it only after every source has synced at least once, so an
 * agent restarting with a partial view never tears down working state (Cilium #31979).
 *
 * On start a reconciler adopts what the kernel already has (never flush and rebuild).
 */
export interface Reconciler<Desired> {
  /** Names the reconciler in logs, metrics and health ("wireguard-peers", "ipsec-sas", ...). */
  readonly name: string;
  /** Reads what the kernel has now, so later updates diff against it. Called once before the first update. */
  adopt(): Promise<void>;
  /** Makes the kernel hold `desired` for `key`; a no-op when it already does. */
  update(key: string, desired: Desired): Promise<void>;
  /** Removes what was installed for `key`; a no-op when nothing is. */
  delete(key: string): Promise<void>;
  /** Removes kernel state that no key accounts for. Only after every source synced. */
  prune(): Promise<void>;
}
