/** Assertions for argument checks: the error thrown must be a ValidationError, returned for inspection. */
import { expect } from 'vitest';
import { ValidationError } from '../../agent/errors.js';

/** Runs `run`, asserts it threw a ValidationError and returns it (for its field and message). */
export function validationError(run: () => unknown): ValidationError {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error('Expected a ValidationError, nothing was thrown');
}
