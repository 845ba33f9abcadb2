// Tests for step 4: recipient lookup with +extensions, @domain entries, delimiters, postmaster,
// lookup order and table reload.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { RecipientCheck, lookupRecipient, stripExtension } from '../../../src/policy/checks/recipient-check.js';
import { RecipientTable } from '../../../src/policy/tables/recipient-table.js';
import { contextFor } from '../fixtures.js';

const s = suite('policy/checks/recipient-check');

const users = RecipientTable.fromText('alice@example.org OK\nbob@example.org OK\n', 'users');
const domains = RecipientTable.fromText('@catchall.example\n', 'domains');

s('no tables configured: the step is skipped', () => {
  const check = new RecipientCheck();
  assert.is(check.run(contextFor({ recipient: 'anyone@anywhere.example' })), null);
});

s('table-driven: known, +extension, whole domain, unknown', () => {
  const check = new RecipientCheck([users, domains]);
  const cases: Array<[string, boolean]> = [
    ['alice@example.org', true],
    ['ALICE@Example.ORG', true],
    ['alice+lists@example.org', true],
    ['alice+a+b@example.org', true],
    ['bob+@example.org', true],
    ['anyone@catchall.example', true],
    ['anyone+x@CATCHALL.example', true],
    ['postmaster@example.org', true], // RFC 5321 s4.5.1
    ['Postmaster', true],
    ['carol@example.org', false],
    ['alice@example.net', true], // a domain no table lists is not judged
    ['alice-x@example.org', false], // "-" is not the delimiter by default
    ['+alice@example.org', false], // a leading delimiter is not an extension
  ];
  for (const [recipient, known] of cases) {
    const r = check.run(contextFor({ recipient }));
    if (known) assert.is(r, null, recipient);
    else assert.equal(r?.action, '550 5.1.1 User unknown', recipient);
  }
});

s('only the domains the tables list are judged: another domain passes, a listed one is checked', () => {
  const check = new RecipientCheck([users, domains]);
  assert.is(check.run(contextFor({ recipient: 'someone@relayed-for.example' })), null, 'a domain in no table');
  assert.is(check.run(contextFor({ recipient: 'someone@sub.example.org' })), null, 'a subdomain is another domain');
  assert.equal(check.run(contextFor({ recipient: 'carol@EXAMPLE.org' }))?.action, '550 5.1.1 User unknown', 'a domain listed by user entries only');
  assert.ok(RecipientTable.fromText('@catchall.example\n', 't').coversDomain('CatchAll.Example'));
  // A recipient without a domain (bare local part) is still judged.
  assert.equal(check.run(contextFor({ recipient: 'carol' }))?.action, '550 5.1.1 User unknown');
});

s('configurable delimiter: several characters, or none', () => {
  const multi = new RecipientCheck([users], { delimiter: '+-' });
  assert.is(multi.run(contextFor({ recipient: 'alice-x@example.org' })), null);
  assert.is(multi.run(contextFor({ recipient: 'bob+y@example.org' })), null);
  const none = new RecipientCheck([users], { delimiter: '' });
  assert.ok(none.run(contextFor({ recipient: 'alice+x@example.org' })));
  assert.is(stripExtension('user+ext', '+'), 'user');
  assert.is(stripExtension('user-a+b', '+-'), 'user');
  assert.is(stripExtension('user', '+'), 'user');
});

s("extensions split as Postfix's split_addr(): owner-foo, foo-request and reserved names stay whole", () => {
  // Postfix global/split_addr.c: no split of postmaster, mailer-daemon, double-bounce; with "-" in
  // recipient_delimiter, none of owner-* or *-request (owner_request_special = yes); and none when
  // the first delimiter would leave an empty local part.
  assert.is(stripExtension('owner-list', '-'), 'owner-list');
  assert.is(stripExtension('List-Request', '+-'), 'List-Request');
  assert.is(stripExtension('owner-list+x', '+-'), 'owner-list+x');
  assert.is(stripExtension('owner-list+x', '+'), 'owner-list', 'without "-" in the set owner- is an ordinary name');
  assert.is(stripExtension('MAILER-DAEMON', '-'), 'MAILER-DAEMON');
  assert.is(stripExtension('double-bounce', '-'), 'double-bounce');
  assert.is(stripExtension('-request', '-'), '-request');
  assert.is(stripExtension('+alice+x', '+'), '+alice+x');
  assert.is(stripExtension('list-x', '-'), 'list');
  const lists = RecipientTable.fromText('list@example.org\n', 't');
  const check = new RecipientCheck([lists], { delimiter: '-' });
  assert.is(check.run(contextFor({ recipient: 'list-digest@example.org' })), null);
  assert.match(check.run(contextFor({ recipient: 'list-request@example.org' }))?.action ?? '', /^550 5\.1\.1/);
  assert.match(check.run(contextFor({ recipient: 'owner-list@example.org' }))?.action ?? '', /^550 5\.1\.1/);
});

s('lookup order: full address, then without extension, then @domain', () => {
  const exact = RecipientTable.fromText('alice+special@example.org\n@example.org\nalice@example.org\n', 't');
  assert.is(lookupRecipient([exact], 'alice+special@example.org')?.key, 'alice+special@example.org');
  assert.is(lookupRecipient([exact], 'alice+other@example.org')?.key, 'alice@example.org');
  assert.is(lookupRecipient([exact], 'zed@example.org')?.key, '@example.org');
});

s('setTables swaps tables (reload) and can turn the step off', () => {
  const check = new RecipientCheck([users]);
  assert.ok(check.run(contextFor({ recipient: 'carol@example.org' })));
  check.setTables([domains]);
  assert.is(check.run(contextFor({ recipient: 'x@catchall.example' })), null);
  assert.is(check.run(contextFor({ recipient: 'carol@example.org' })), null, 'example.org is no longer listed');
  check.setTables([]);
  assert.is(check.run(contextFor({ recipient: 'nobody@nowhere.example' })), null);
  assert.equal([check.step, check.name], [4, 'recipient-tables']);
});

s.run();
