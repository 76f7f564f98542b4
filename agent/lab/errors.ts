/**
 * Failure kinds of `veil lab`. Bad options are ConfigError, missing kernel features or programs
 * MissingDependencyError (agent/errors.ts); what only the lab can get wrong is a LabError.
 */
import { VeilError } from '../errors.js';

/** A lab of that name already exists (its state file is present). */
export const LAB_EXISTS = 'VEIL_LAB_EXISTS';
/** No lab of that name: nothing to show or remove. */
export const LAB_NOT_FOUND = 'VEIL_LAB_NOT_FOUND';
/** The state file is unreadable or not a lab state (damaged or hostile). */
export const LAB_STATE = 'VEIL_LAB_STATE';
/** `up` was interrupted (SIGINT/SIGTERM); what it created was removed. */
export const LAB_INTERRUPTED = 'VEIL_LAB_INTERRUPTED';
/** `up` failed and removing what it had created failed too: `down` must be run again. */
export const LAB_CLEANUP = 'VEIL_LAB_CLEANUP';
/** A lab process (etcd) did not start or did not become ready. */
export const LAB_PROCESS = 'VEIL_LAB_PROCESS';
/** A request on a running lab that cannot be met (duplicate pod, full pod CIDR, unknown node). */
export const LAB_CONFLICT = 'VEIL_LAB_CONFLICT';

export class LabError extends VeilError {}
