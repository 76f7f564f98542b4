/** Assertions for refusals: the error thrown must be of the expected class, returned for inspection. */
import { expect } from 'vitest';
import { ValidationError } from '../../agent/errors.js';

/** Runs `run`, asserts it threw an instance of `cls` and returns it (for its fields and message). */
export function thrown<E extends Error>(run: () => unknown, cls: abstract new (...args: never[]) => E): E {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(cls);
    return err as E;
  }
  throw new Error(`Expected a ${cls.name}, nothing was thrown`);
}

/** Runs `run`, asserts it threw a ValidationError and returns it (for its field and message). */
export function validationError(run: () => unknown): ValidationError {
  return thrown(run, ValidationError);
}
