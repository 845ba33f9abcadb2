// Assertions on typed errors shared by the test suites: the call must throw an MxError subclass
// with the given stable code (and, optionally, a message matching a pattern).
import * as assert from 'uvu/assert';
import { MxError } from '../../src/util/errors.js';

/** Asserts that fn throws an MxError with `code`; `re` must match its message when given. */
export function throwsCode(fn: () => unknown, code: string, re?: RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof MxError, `expected a typed error with code ${code}, got ${String(err)}`);
    assert.is((err as MxError).code, code);
    if (re) assert.match((err as MxError).message, re);
    return;
  }
  assert.unreachable(`expected ${code}`);
}
