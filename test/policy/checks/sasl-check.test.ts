// Tests for step 6: SASL-authenticated clients pass with DUNNO (or OK as configured).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SaslCheck } from '../../../src/policy/checks/sasl-check.js';
import { contextFor } from '../fixtures.js';

const s = suite('policy/checks/sasl-check');

s('authenticated clients get DUNNO (default) with the user in the reason', () => {
  const check = new SaslCheck();
  assert.equal(check.run(contextFor({ sasl_username: 'alice', sasl_method: 'PLAIN' })), { action: 'DUNNO', reason: 'authenticated as alice' });
  assert.equal([check.step, check.name], [6, 'sasl-authenticated']);
});

s('unauthenticated (empty or missing sasl_username) gives no verdict', () => {
  const check = new SaslCheck();
  assert.is(check.run(contextFor({ sasl_username: '' })), null);
  const ctx = contextFor();
  ctx.request = { protocol_state: 'RCPT' };
  assert.is(check.run(ctx), null);
});

s('configurable OK; control characters never reach the log reason', () => {
  const r = new SaslCheck({ action: 'OK' }).run(contextFor({ sasl_username: 'bob\nx' }));
  assert.equal(r, { action: 'OK', reason: 'authenticated as bob?x' });
});

s.run();
