/** What every `veil lab` operation depends on; the CLI is the only place that builds it. */
import type { Logger } from '../log/logger.js';
import type { LaunchSpec } from './launcher.js';
import type { LabNodeState, LabState } from './state.js';

export interface LabDeps {
  /** Where lab directories live; default /run/veil/lab. */
  root?: string;
  logger?: Logger;
  /** Aborted by SIGINT/SIGTERM: `up` stops and removes what it made. */
  signal?: AbortSignal;
  /**
   * The processes `up` starts for each node (the agent, once it exists). Each runs in the node's
   * namespace, is recorded in the state file and stopped by `down`. Default: none.
   */
  nodeProcesses?: (node: LabNodeState, state: LabState) => LaunchSpec[] | Promise<LaunchSpec[]>;
  /**
   * Processes `up` starts once for the lab, in the underlay namespace next to etcd (the
   * operator), before the node processes. Recorded and stopped like them. Default: none.
   */
  clusterProcesses?: (state: LabState) => LaunchSpec[] | Promise<LaunchSpec[]>;
}
