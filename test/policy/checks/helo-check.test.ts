// Tests for steps 1-2: table-driven valid/invalid HELO names and address literals, and the optional
// must-resolve lookup against a fake ResolveFn (NXDOMAIN rejects, failures fail open).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { ResolveFn, ResolveResult } from '../../../src/dns/resolver-api.js';
import {
  HeloHostnameCheck,
  HeloRequiredCheck,
  createHeloChecks,
  heloNameProblem,
  isValidAddressLiteral,
  hostnameByLabels,
  isValidHostname,
} from '../../../src/policy/checks/helo-check.js';
import { PolicyError } from '../../../src/util/errors.js';
import { contextFor, postfixRequest } from '../fixtures.js';
import { PolicyPipeline } from '../../../src/policy/pipeline.js';
import type { Check } from '../../../src/policy/types.js';
import { systemClock } from '../../../src/util/clock.js';
import { createSilentLogger } from '../../../src/util/logger.js';

const s = suite('policy/checks/helo-check');

const VALID = [
  'mail.example.com',
  'mail.example.com.',
  'MX1.Example.ORG',
  'a.b',
  '1mail.example.com',
  '123.example.com',
  'xn--bcher-kva.example',
  'mail-out.example.co.uk',
  'exchange_01.corp.example.com', // underscore: Postfix's valid_hostname() accepts it
  `${'a'.repeat(63)}.example.com`,
  'mail.example.123', // a numeric last label in a name that is not all digits: Postfix accepts it
  '[192.0.2.1]',
  '[255.255.255.255]',
  '[IPv6:2001:db8::1]',
  '[ipv6:::1]',
  '[IPv6:::ffff:192.0.2.1]',
];

const INVALID: Array<[string, 'invalid' | 'not-fqdn']> = [
  ['localhost', 'not-fqdn'],
  ['mailserver', 'not-fqdn'],
  // A bare address: Postfix's reject_invalid_hostname accepts it (valid_hostaddr, "back compat"),
  // reject_non_fqdn_hostname rejects it as not fully qualified.
  ['192.0.2.1', 'not-fqdn'],
  ['2001:db8::1', 'not-fqdn'],
  ['192.0.2.256', 'invalid'],
  ['fe80::1%eth0', 'invalid'],
  ['123.456', 'invalid'], // all digits: Postfix's valid_hostname() calls it numeric
  ['-mail.example.com', 'invalid'],
  ['mail-.example.com', 'invalid'],
  ['mail.example-.com', 'invalid'],
  ['mail..example.com', 'invalid'],
  ['.example.com', 'invalid'],
  ['mail.example.com..', 'invalid'],
  ['mail example.com', 'invalid'],
  ['mail@example.com', 'invalid'],
  ['bücher.example', 'invalid'],
  [`${'a'.repeat(64)}.example.com`, 'invalid'],
  [`${'abcdefghi.'.repeat(26)}com`, 'invalid'], // 263 characters
  ['[192.0.2.256]', 'invalid'],
  ['[192.0.2]', 'invalid'],
  ['[2001:db8::1]', 'invalid'], // IPv6 needs the tag
  ['[IPv6:2001:db8::g]', 'invalid'],
  ['[IPv6:fe80::1%eth0]', 'invalid'],
  ['[x-tag:abc]', 'invalid'],
  ['[192.0.2.1', 'invalid'],
  ['[]', 'invalid'],
];

s('valid HELO names pass step 2', async () => {
  const check = new HeloHostnameCheck();
  for (const helo of VALID) {
    assert.is(heloNameProblem(helo), undefined, helo);
    assert.is(await check.run(contextFor({ helo_name: helo })), null, helo);
  }
});

s('invalid HELO names are rejected with Postfix-like texts', async () => {
  const check = new HeloHostnameCheck();
  for (const [helo, kind] of INVALID) {
    assert.is(heloNameProblem(helo), kind, helo);
    const r = await check.run(contextFor({ helo_name: helo }));
    assert.ok(r, helo);
    // Postfix's codes: non_fqdn_reject_code 504, invalid_hostname_reject_code 501.
    assert.match(r.action, kind === 'not-fqdn' ? /^504 5\.5\.2 </ : /^501 5\.5\.2 </, helo);
    assert.match(r.action, kind === 'not-fqdn' ? /Helo command rejected: need fully-qualified hostname$/ : /Helo command rejected: Invalid name$/, helo);
    assert.not.match(r.action, /[\r\n]/);
  }
});

s('helo-require-fqdn off: a single-label name passes, a malformed one is still rejected; must-resolve still asks', async () => {
  const check = new HeloHostnameCheck({ requireFqdn: false });
  for (const [helo, kind] of INVALID) {
    const r = await check.run(contextFor({ helo_name: helo }));
    if (kind === 'not-fqdn') assert.is(r, null, helo);
    else assert.match(r?.action ?? '', /Helo command rejected: Invalid name$/, helo);
  }
  // With must-resolve, the single label is looked up like any name: NXDOMAIN rejects.
  const asked: string[] = [];
  const resolve: ResolveFn = async (name) => {
    asked.push(name);
    return { rcode: 3, records: [], answers: [], authorities: [], ttlSec: 0, source: 'recursion' } as unknown as ResolveResult;
  };
  const strict = new HeloHostnameCheck({ requireFqdn: false, mustResolve: true, resolve });
  const r = await strict.run(contextFor({ helo_name: 'EXCH01' }));
  assert.match(r?.action ?? '', /Host not found$/);
  assert.ok(asked.some((n) => /^exch01\.?$/i.test(n)), asked.join(','));
  // A bare address names no host: accepted without a lookup, as an address literal is.
  asked.length = 0;
  assert.is(await strict.run(contextFor({ helo_name: '192.0.2.3' })), null);
  assert.is(await strict.run(contextFor({ helo_name: '2001:db8::1' })), null);
  assert.equal(asked, []);
});

s('reply text never carries control characters from the client', async () => {
  const r = await new HeloHostnameCheck().run(contextFor({ helo_name: 'bad\tname\x01.example' }));
  assert.is(r?.action, '501 5.5.2 <bad?name?.example>: Helo command rejected: Invalid name');
});

s('isValidHostname reads ASCII names as the general reading by labels does (random names, every option)', () => {
  let seed = 11;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const alphabet = ['a', 'Z', '0', '9', '.', '.', '-', '_', 'x', '1', ' ', '\t', 'é', '\u00a0', '\u200b', 'ü', '@', '/', '\ud83d\ude00'];
  const fixed = ['', '.', '..', 'a.', 'a.b', 'a.b.', 'a..b', '-a.b', 'a-.b', 'a.-b', 'a.b-', '1.2', '1.2.3.4', 'a.123', '123.a', 'a.1b', 'a.b1',
    `${'a'.repeat(63)}.b`, `${'a'.repeat(64)}.b`, `${'a.'.repeat(126)}b`, `${'a.'.repeat(127)}b`, `${'a.'.repeat(126)}bc`, 'mail.example.com.', 'a_b.c', 'bücher.example', 'a.b..'];
  const names = [...fixed];
  for (let k = 0; k < 20000; k++) {
    let name = '';
    for (let len = rnd(14); len > 0; len--) name += alphabet[rnd(alphabet.length)];
    names.push(name);
  }
  for (const options of [{}, { allowUnderscore: true }, { allowUtf8: true }, { allowUnderscore: true, allowUtf8: true }]) {
    for (const name of names) assert.is(isValidHostname(name, options), hostnameByLabels(name, options), `${JSON.stringify(name)} ${JSON.stringify(options)}`);
  }
});

s('isValidHostname / isValidAddressLiteral options', () => {
  assert.is(isValidHostname('a_b.example.com'), false, 'no underscore by default (RFC 5321 Domain)');
  assert.is(isValidHostname('a_b.example.com', { allowUnderscore: true }), true);
  assert.is(isValidHostname('bücher.example', { allowUtf8: true }), true);
  assert.is(isValidHostname('bü cher.example', { allowUtf8: true }), false);
  assert.is(isValidAddressLiteral('[010.000.002.001]'), true, 'Snum allows leading zeros');
  assert.is(isValidAddressLiteral('[1.2.3.4.5]'), false);
});

s('step 1: empty helo_name is rejected; any name passes (step 2 judges it)', () => {
  const check = new HeloRequiredCheck();
  assert.is(check.step, 1);
  const r = check.run(contextFor({ helo_name: '' }));
  assert.equal(r, { action: '503 5.5.1 Error: send HELO/EHLO first', reason: 'no HELO/EHLO' });
  assert.is(check.run(contextFor({ helo_name: 'localhost' })), null);
  const noAttr = contextFor();
  noAttr.request = {};
  assert.ok(check.run(noAttr), 'missing attribute counts as empty');
});

function answer(rcode: number, addresses: string[] = []): ResolveResult {
  return {
    rcode,
    records: addresses.map((a) => ({ name: 'x.', type: a.includes(':') ? 'AAAA' : 'A', ttl: 60, data: a })),
    answers: [],
    authorities: [],
    ttlSec: 60,
    source: 'cache',
    ...(rcode === 2 ? { failure: 'deadline' } : {}),
  };
}

function fakeResolver(table: Record<string, ResolveResult | Error>): { resolve: ResolveFn; calls: string[] } {
  const calls: string[] = [];
  const resolve: ResolveFn = async (name, type, opts) => {
    calls.push(`${name}/${String(type)}/${opts?.deadlineMs ?? '-'}`);
    const r = table[`${name}/${String(type)}`] ?? answer(3);
    if (r instanceof Error) throw r;
    return r;
  };
  return { resolve, calls };
}

s('mustResolve: found passes, NXDOMAIN rejects 5.7.1, NODATA/SERVFAIL/throw give no verdict', async () => {
  const { resolve, calls } = fakeResolver({
    'mx.found.example/A': answer(0, ['192.0.2.5']),
    'mx.found.example/AAAA': answer(0),
    'v6only.example.net/A': answer(0),
    'v6only.example.net/AAAA': answer(0, ['2001:db8::5']),
    'noaddr.example.net/A': answer(0),
    'noaddr.example.net/AAAA': answer(0),
    'broken.example.net/A': answer(2),
    'broken.example.net/AAAA': answer(2),
    'throws.example.net/A': new Error('resolver down'),
    'throws.example.net/AAAA': new Error('resolver down'),
  });
  const check = new HeloHostnameCheck({ mustResolve: true, resolve });
  const run = (helo: string) => check.run(contextFor({ helo_name: helo }));
  assert.is(await run('mx.found.example'), null);
  assert.is(await run('v6only.example.net'), null);
  assert.is(await run('noaddr.example.net'), null);
  assert.is(await run('broken.example.net'), null);
  assert.is(await run('throws.example.net'), null);
  const r = await run('nonexistent.example.net');
  assert.equal(r?.action, 'REJECT 5.7.1 <nonexistent.example.net>: Helo command rejected: Host not found');
  assert.ok(calls.includes('nonexistent.example.net/A/1500'), 'lookup deadline: its own budget (1500 ms), not the 3000 ms left');
  const before = calls.length;
  assert.is(await run('[192.0.2.1]'), null);
  assert.ok((await run('bad..name'))?.action.includes('Invalid name'));
  assert.is(calls.length, before, 'address literals and invalid names are not looked up');
});

s('mustResolve: the lookup gets at most its own budget, and at most what is left of the decision', async () => {
  const { resolve, calls } = fakeResolver({});
  const check = new HeloHostnameCheck({ mustResolve: true, resolve, lookupBudgetMs: 200 });
  await check.run(contextFor({ helo_name: 'a.example.net' }));
  assert.ok(calls.includes('a.example.net/A/200'), calls.join(' '));
  const late = contextFor({ helo_name: 'b.example.net' });
  late.deadlineAtMs = late.nowMs + 80;
  await check.run(late);
  assert.ok(calls.includes('b.example.net/A/80'), calls.join(' '));
  try {
    new HeloHostnameCheck({ mustResolve: true, resolve, lookupBudgetMs: 0 });
    assert.unreachable();
  } catch (err) {
    assert.is((err as PolicyError).code, 'POLICY_ERR_CONFIG');
  }
});

s('mustResolve: a HELO domain whose servers never answer does not eat the decision: later steps still run', async () => {
  // As the real resolver: SERVFAIL (deadline) once the caller's deadline has passed.
  const resolve: ResolveFn = (_name, _type, opts) =>
    new Promise((r) => setTimeout(() => r({ ...answer(2), failure: 'deadline' }), opts?.deadlineMs ?? 5000));
  const [one, two] = createHeloChecks({ mustResolve: true, resolve, lookupBudgetMs: 50 });
  const later: Check = { step: 10, name: 'greylist', run: () => ({ action: 'DEFER_IF_PERMIT greylisted', reason: 'later step ran' }) };
  const pipeline = new PolicyPipeline([one, two, later], systemClock, createSilentLogger(), { budgetMs: 400 });
  const started = Date.now();
  const d = await pipeline.decide(postfixRequest({ helo_name: 'mx.lame-delegation.example' }));
  assert.is(d.stepName, 'greylist', `decided at ${d.stepName}: ${d.reason}`);
  assert.ok(Date.now() - started < 400, 'well inside the decision budget');
});

s('mustResolve: prepare() starts the lookup once; run() reuses it', async () => {
  const { resolve, calls } = fakeResolver({ 'mx.found.example/A': answer(0, ['192.0.2.5']) });
  const check = new HeloHostnameCheck({ mustResolve: true, resolve });
  const ctx = contextFor({ helo_name: 'mx.found.example' });
  check.prepare(ctx);
  await new Promise((r) => setImmediate(r));
  assert.is(calls.length, 2);
  assert.is(await check.run(ctx), null);
  assert.is(calls.length, 2);
});

s('mustResolve: a resolver that throws synchronously in prepare() never leaks a rejection', async () => {
  const resolve: ResolveFn = () => { throw new Error('sync failure'); };
  const check = new HeloHostnameCheck({ mustResolve: true, resolve });
  const ctx = contextFor({ helo_name: 'mx.example.net' });
  check.prepare(ctx); // never awaited here, as when step 1 decides first
  await new Promise((r) => setImmediate(r));
  assert.is(await check.run(ctx), null);
});

s('mustResolve without a resolver is a configuration error; createHeloChecks gives steps 1 and 2', () => {
  try {
    new HeloHostnameCheck({ mustResolve: true });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, PolicyError);
    assert.is((err as PolicyError).code, 'POLICY_ERR_CONFIG');
  }
  const [one, two] = createHeloChecks();
  assert.equal([one.step, one.name, two.step, two.name], [1, 'helo-required', 2, 'helo-hostname']);
});

s.run();
