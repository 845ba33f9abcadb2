// Tests for step 3: table-driven senders (quoted and internal-form local parts, address literals,
// SMTPUTF8, the null sender) and the RFC 5321 local-part grammar.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { SenderCheck, isDotString, isQuotedString, isValidMailbox } from '../../../src/policy/checks/sender-check.js';
import { contextFor } from '../fixtures.js';

const s = suite('policy/checks/sender-check');

const VALID = [
  'user@example.com',
  'first.last@mail.example.co.uk',
  'user+tag@example.com',
  "o'brien@example.ie",
  'a!#$%&*+-/=?^_`{|}~b@example.com',
  'SRS0=HHH=TT=example.org=alice@forwarder.example.net',
  'bounce-123@xn--bcher-kva.example',
  '"john doe"@example.com',
  '"weird\\"quote"@example.com',
  '"a@b"@example.com',
  'john doe@example.com', // Postfix's internal (unquoted) form of "john doe"@example.com
  'a@b@example.com', // internal form of "a@b"@example.com
  'user@[192.0.2.1]',
  'user@[IPv6:2001:db8::1]',
  'jöran@bücher.example', // RFC 6531 SMTPUTF8
  '1@2.example',
  // As Postfix's reject_non_fqdn_sender (valid_hostname()): one trailing dot, underscores, and a
  // numeric last label in a name that is not all digits.
  'user@example.com.',
  'bounce@mail_out.example.com',
  'user@example.123',
];

const INVALID = [
  'user',
  'user@',
  '@example.com',
  'user@localhost',
  'user@example',
  'user@.example.com',
  'user@example..com',
  'user@-example.com',
  'user@example-.com',
  'user@192.0.2.1',
  'user@[192.0.2.300]',
  'user@[2001:db8::1]',
  'user@exa mple.com',
  'us\ter@example.com',
  'user\x00@example.com',
  `${'a'.repeat(250)}@example.com`,
];

s('valid senders pass', () => {
  const check = new SenderCheck();
  for (const sender of VALID) {
    assert.ok(isValidMailbox(sender), sender);
    assert.is(check.run(contextFor({ sender })), null, sender);
  }
});

s('invalid senders are rejected with Postfix\'s reject_non_fqdn_sender reply (504 5.5.2), or 501 5.5.2 for a bad local part', () => {
  const check = new SenderCheck();
  for (const sender of INVALID) {
    assert.not.ok(isValidMailbox(sender), sender);
    const r = check.run(contextFor({ sender }));
    assert.ok(r, sender);
    assert.match(r.action, /^(504 5\.5\.2 <.*>: Sender address rejected: need fully-qualified address|501 5\.5\.2 <.*>: Sender address rejected: bad address syntax)$/, sender);
    assert.not.match(r.action, /[\x00-\x1f]/, sender);
  }
  // Not REJECT 5.1.7: Postfix would send 554 and turn 5.1.7 into the recipient's 5.1.3.
  assert.is(check.run(contextFor({ sender: 'root@localhost' }))?.action, '504 5.5.2 <root@localhost>: Sender address rejected: need fully-qualified address');
  assert.is(check.run(contextFor({ sender: 'us\ter@example.com' }))?.action, '501 5.5.2 <us?er@example.com>: Sender address rejected: bad address syntax');
});

s('the null sender <> (empty sender=) passes', () => {
  assert.is(new SenderCheck().run(contextFor({ sender: '' })), null);
  const noAttr = contextFor();
  noAttr.request = {};
  assert.is(new SenderCheck().run(noAttr), null);
});

s('dot-string and quoted-string grammar (RFC 5321 s4.1.2)', () => {
  assert.ok(isDotString('a.b.c'));
  assert.not.ok(isDotString('a..b'));
  assert.not.ok(isDotString('.a'));
  assert.not.ok(isDotString('a.'));
  assert.not.ok(isDotString('a b'));
  assert.ok(isQuotedString('"a b"'));
  assert.ok(isQuotedString('""'));
  assert.ok(isQuotedString('"a\\\\b"'));
  assert.not.ok(isQuotedString('"a"b"'));
  assert.not.ok(isQuotedString('"abc\\"'));
  assert.not.ok(isQuotedString('"a\x01"'));
});

s('step metadata', () => {
  const c = new SenderCheck();
  assert.equal([c.step, c.name], [3, 'sender-syntax']);
});

s.run();
