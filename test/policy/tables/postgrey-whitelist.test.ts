// Tests for postgrey whitelist files: every client and recipient format, comments, warnings,
// bad regexes, and loading files (a missing ".local" file is skipped like postgrey does).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostgreyWhitelist, WhitelistSyntaxError } from '../../../src/policy/tables/postgrey-whitelist.js';

const s = suite('policy/tables/postgrey-whitelist');

const CLIENTS = `# postgrey whitelist for mail client hostnames
# --------------------------------------------
debian.org
Amazon.COM          # trailing comment
/^ms-smtp.*\\.rr\\.com$/
/^mail\\d+\\.telekom\\.de$/
/^a\\x{41}b\\.test$/
/^c{,2}d\\.test$/
66.216.126.174
192.0.2.0/25
198.51.100
10.20
2001:db8:5::/48
2001:db8:9::1
not a hostname
300.1.1.1
`;

const RECIPIENTS = `postmaster@
abuse@
/^spamtrap-[0-9]+@/
@exact.example
domain.example
alice@users.example
`;

function wl(): PostgreyWhitelist {
  return PostgreyWhitelist.fromText([{ source: 'whitelist_clients', text: CLIENTS }], [{ source: 'whitelist_recipients', text: RECIPIENTS }]);
}

const clientCases: [string, string, string | undefined][] = [
  ['debian.org', '203.0.113.1', 'debian.org'],
  ['lists.DEBIAN.org', '203.0.113.1', 'debian.org'],
  ['notdebian.org', '203.0.113.1', undefined],
  ['debian.org.evil.example', '203.0.113.1', undefined],
  ['smtp-out.amazon.com', '203.0.113.1', 'Amazon.COM'],
  ['ms-smtp-03.nyroc.rr.com', '203.0.113.1', '/^ms-smtp.*\\.rr\\.com$/'],
  ['mail12.telekom.de', '203.0.113.1', '/^mail\\d+\\.telekom\\.de$/'],
  ['mailx.telekom.de', '203.0.113.1', undefined],
  ['unknown', '66.216.126.174', '66.216.126.174'],
  ['unknown', '66.216.126.175', undefined],
  ['unknown', '192.0.2.127', '192.0.2.0/25'],
  ['unknown', '192.0.2.128', undefined],
  ['unknown', '198.51.100.77', '198.51.100'],
  // "a.b" is a.b.0.0/24, as postgrey's NetAddr::IP->new("a.b", 24) reads it (its comment says /16).
  ['unknown', '10.20.0.9', '10.20'],
  ['unknown', '10.20.200.1', undefined],
  ['unknown', '10.21.0.1', undefined],
  // Perl's \x{41} and {,n} (Perl 5.34+: {0,n}) read as postgrey reads them.
  ['aab.test', '203.0.113.1', '/^a\\x{41}b\\.test$/'],
  ['axb.test', '203.0.113.1', undefined],
  ['ccd.test', '203.0.113.1', '/^c{,2}d\\.test$/'],
  ['d.test', '203.0.113.1', '/^c{,2}d\\.test$/'],
  ['cccd.test', '203.0.113.1', undefined],
  ['unknown', '2001:db8:5:ffff::1', '2001:db8:5::/48'],
  ['unknown', '2001:db8:9::1', '2001:db8:9::1'],
  ['unknown', '2001:db8:9::2', undefined],
  ['unknown', '::ffff:66.216.126.174', '66.216.126.174'],
];
for (const [name, addr, want] of clientCases) {
  s(`client ${name} [${addr}] -> ${want ?? 'no match'}`, () => {
    assert.is(wl().matchClient(name, addr), want);
  });
}

const recipientCases: [string, string | undefined][] = [
  ['postmaster@anything.example', 'postmaster@'],
  ['Postmaster+tag@x.example', 'postmaster@'],
  ['postmasterx@x.example', undefined],
  ['abuse@x.example', 'abuse@'],
  ['spamtrap-42@x.example', '/^spamtrap-[0-9]+@/'],
  ['bob@exact.example', '@exact.example'],
  ['bob@sub.exact.example', undefined],
  ['bob@domain.example', 'domain.example'],
  ['bob@mx.domain.example', 'domain.example'],
  ['bob@otherdomain.example', undefined],
  ['alice@users.example', 'alice@users.example'],
  ['ALICE+list@Users.Example', 'alice@users.example'],
  ['alice@other.example', undefined],
  ['malice@users.example', undefined],
];
for (const [rcpt, want] of recipientCases) {
  s(`recipient ${rcpt} -> ${want ?? 'no match'}`, () => {
    assert.is(wl().matchRecipient(rcpt), want);
  });
}

s('odd lines become warnings with file and line, like postgrey', () => {
  const w = wl();
  assert.equal(w.warnings.map((x) => [x.source, x.line]), [['whitelist_clients', 15], ['whitelist_clients', 16]]);
  assert.match(w.warnings[0]?.message ?? '', /doesn't look like a hostname/);
  assert.match(w.warnings[1]?.message ?? '', /300\.1\.1\.1/);
  assert.equal(w.size, { clients: 12, recipients: 6 });
});

s('a regex that does not compile is an error naming file and line', () => {
  assert.throws(
    () => PostgreyWhitelist.fromText([{ source: 'wl', text: 'ok.example\n/mail(\\d+/\n' }], []),
    (err: unknown) => (err as { code?: string }).code === 'POLICY_ERR_BAD_WHITELIST' && /wl line 2/.test((err as Error).message),
  );
});

s('every bad regex of every file is reported at once, each with its file and line', () => {
  try {
    PostgreyWhitelist.fromText([{ source: 'wl', text: '/[bad1/\n/^(a+)+$/\n/[bad2/\nok.example\n' }], [{ source: 'wr', text: '/(bad3/\n' }]);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, WhitelistSyntaxError);
    assert.is((err as WhitelistSyntaxError).code, 'POLICY_ERR_BAD_WHITELIST');
    assert.equal((err as WhitelistSyntaxError).problems.map((p) => p.split(':')[0]), ['wl line 1', 'wl line 3', 'wr line 1']);
  }
});

s('inline modifiers: (?i) and the others that change nothing on a name are dropped; one that turns a flag off is refused', () => {
  const w = PostgreyWhitelist.fromText([{ source: 'wl', text: '/(?i)^mx\\d+\\.mod\\.example$/\n/^(?i:relay)\\.mod\\.example$/\n/(?s)^a\\.mod\\.example$/\n' }], []);
  assert.is(w.matchClient('MX7.mod.example', '192.0.2.1'), '/(?i)^mx\\d+\\.mod\\.example$/');
  assert.is(w.matchClient('relay.mod.example', '192.0.2.1'), '/^(?i:relay)\\.mod\\.example$/');
  assert.is(w.matchClient('a.mod.example', '192.0.2.1'), '/(?s)^a\\.mod\\.example$/');
  assert.is(w.matchClient('xrelay.mod.example', '192.0.2.1'), undefined);
  assert.throws(
    () => PostgreyWhitelist.fromText([{ source: 'wl', text: '/(?-i)^mx\\.example$/\n' }], []),
    (err: unknown) => /wl line 1: regular expression .*inline modifier \(\?-i\) has no equivalent/.test((err as Error).message),
  );
});

s('a pattern that repeats a repeating group is skipped with a warning, and does not stall a match', () => {
  const w = PostgreyWhitelist.fromText([{ source: 'wl', text: '/^(a+)+$/\n/^mx\\d+\\.ok\\.example$/\n' }], [{ source: 'wr', text: '/^(\\w+-?)+@lists\\.example$/\n' }]);
  assert.equal(w.warnings.map((x) => [x.source, x.line]), [['wl', 1], ['wr', 1]]);
  assert.is(w.size.recipients, 0);
  assert.is(w.matchRecipient(`${'a'.repeat(80)}!@lists.example`), undefined);
  assert.match(w.warnings[0]?.message ?? '', '"(a+)+"');
  assert.is(w.size.clients, 1);
  // 80 letters and a dot: for ever for /^(a+)+$/; with the entry skipped, no regex runs on it long.
  assert.is(w.matchClient(`${'a'.repeat(80)}b.example.net`, '192.0.2.1'), undefined);
  assert.is(w.matchClient('mx7.ok.example', '192.0.2.1'), '/^mx\\d+\\.ok\\.example$/');
});

s('Perl anchors and POSIX classes in a pattern match as they do in postgrey', () => {
  const text = '/\\Amx\\d+\\.anchored\\.example\\z/\n/^relay[[:digit:]]+\\.posix\\.example\\Z/\n/^[]x]+\\.bracket\\.example$/\n';
  const w = PostgreyWhitelist.fromText([{ source: 'wl', text }], [{ source: 'wr', text: '/^list-[[:alnum:]]+@lists\\.example\\z/\n' }]);
  assert.is(w.matchClient('mx12.anchored.example', '192.0.2.1'), '/\\Amx\\d+\\.anchored\\.example\\z/');
  assert.is(w.matchClient('smx12.anchored.example', '192.0.2.1'), undefined, '\\A anchors at the start');
  assert.is(w.matchClient('mx12.anchored.example.evil', '192.0.2.1'), undefined, '\\z anchors at the end');
  assert.is(w.matchClient('relay7.posix.example', '192.0.2.1'), '/^relay[[:digit:]]+\\.posix\\.example\\Z/');
  assert.is(w.matchClient('relayx.posix.example', '192.0.2.1'), undefined);
  assert.is(w.matchClient(']x].bracket.example', '192.0.2.1'), '/^[]x]+\\.bracket\\.example$/');
  assert.is(w.matchRecipient('list-devel@lists.example'), '/^list-[[:alnum:]]+@lists\\.example\\z/');
});

s('a Perl escape without a JavaScript meaning is an error naming file and line, not a pattern that never matches', () => {
  for (const body of ['\\Qmx.example\\E', '^mx\\h+', '^[[:^alpha:]]+$']) {
    assert.throws(
      () => PostgreyWhitelist.fromText([{ source: 'wl', text: `ok.example\n/${body}/\n` }], []),
      (err: unknown) => (err as { code?: string }).code === 'POLICY_ERR_BAD_WHITELIST' && /wl line 2: regular expression/.test((err as Error).message),
      body,
    );
  }
});

s('empty whitelist matches nothing', () => {
  const w = PostgreyWhitelist.empty();
  assert.is(w.matchClient('debian.org', '192.0.2.1'), undefined);
  assert.is(w.matchRecipient('postmaster@x.example'), undefined);
});

s('load: reads files, skips a missing .local, fails on another missing file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-wl-'));
  try {
    writeFileSync(join(dir, 'whitelist_clients'), CLIENTS);
    writeFileSync(join(dir, 'whitelist_recipients'), RECIPIENTS);
    const w = await PostgreyWhitelist.load(
      [join(dir, 'whitelist_clients'), join(dir, 'whitelist_clients.local')],
      [join(dir, 'whitelist_recipients')],
    );
    assert.is(w.matchClient('debian.org', '192.0.2.200'), 'debian.org');
    assert.is(w.matchRecipient('abuse@x.example'), 'abuse@');
    try {
      await PostgreyWhitelist.load([join(dir, 'missing')], []);
      assert.unreachable();
    } catch (err) {
      assert.is((err as { code?: string }).code, 'POLICY_ERR_BAD_WHITELIST');
      assert.match((err as Error).message, /missing/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s.run();
