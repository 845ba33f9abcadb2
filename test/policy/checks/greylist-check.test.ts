// Tests for policy step 10 over the in-memory store: the postgrey flow end to end, action texts,
// whitelists, auto-whitelist, dry runs, fail open on store errors, PREPEND once per message.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createGreylistCheck, greylistAction, rfc5322Date, type GreylistCheckOptions } from '../../../src/policy/checks/greylist-check.js';
import { DEFAULT_GREYLIST_CONFIG } from '../../../src/policy/greylist.js';
import { PostgreyWhitelist } from '../../../src/policy/tables/postgrey-whitelist.js';
import type { CheckContext, PolicyRequest } from '../../../src/policy/types.js';
import { ManualClock } from '../../../src/util/clock.js';
import { StoreError } from '../../../src/util/errors.js';
import { createSilentLogger } from '../../../src/util/logger.js';
import { captureLogger } from '../../helpers/fake-list-resolver.js';
import { MemoryGreylistStore } from '../../helpers/memory-greylist-store.js';
import { LmdbGreylistStore } from '../../../src/store/lmdb-greylist-store.js';

const s = suite('policy/checks/greylist-check');

function setup(opts: Partial<GreylistCheckOptions> = {}) {
  const clock = new ManualClock(Date.UTC(2024, 0, 15, 10, 30, 0));
  const store = new MemoryGreylistStore();
  const check = createGreylistCheck({
    store, logger: createSilentLogger(), config: { ...DEFAULT_GREYLIST_CONFIG }, nodeId: 'mx1', version: '0.1.0', clock, ...opts,
  });
  const ctx = (attrs: Partial<Record<string, string>> = {}, record = true): CheckContext => {
    const request: PolicyRequest = {
      client_address: '192.0.2.10', client_name: 'mail.sender.example', sender: 'alice@sender.example',
      recipient: 'bob@rcpt.example', instance: `inst-${clock.nowMs()}`, ...attrs,
    } as Record<string, string>;
    return { request, clientAddress: request['client_address'] ?? '', deadlineAtMs: clock.nowMs() + 5000, nowMs: clock.nowMs(), record, memo: new Map() };
  };
  return { clock, store, check, ctx };
}

s('step 10 identity', () => {
  const { check } = setup();
  assert.is(check.step, 10);
  assert.is(check.name, 'greylist');
});

s('first seen defers, early retry defers with the remaining time, after the delay passes', async () => {
  const { clock, store, check, ctx } = setup();
  let r = await check.run(ctx());
  assert.is(r?.action, 'DEFER_IF_PERMIT 4.2.0 Greylisted by mxsentry, try again in 60 seconds');
  assert.is(r?.reason, 'greylisted 192.0.2.0/alice@sender.example/bob@rcpt.example (new, 60s to wait)');
  assert.is(store.triplets.size, 1);
  assert.ok(store.triplets.has('192.0.2.0/alice@sender.example/bob@rcpt.example'));
  clock.advanceSec(20);
  r = await check.run(ctx());
  assert.is(r?.action, 'DEFER_IF_PERMIT 4.2.0 Greylisted by mxsentry, try again in 40 seconds');
  assert.is(r?.reason, 'greylisted 192.0.2.0/alice@sender.example/bob@rcpt.example (early retry, 40s to wait)');
  clock.advanceSec(45);
  r = await check.run(ctx({ client_address: '192.0.2.99' }));
  assert.is(r?.action, 'DUNNO', 'a retry from the same /24 passes');
  assert.match(r?.reason ?? '', /greylist passed .* after 65s/);
  clock.advanceSec(10);
  r = await check.run(ctx());
  assert.is(r?.action, 'DUNNO');
  assert.match(r?.reason ?? '', /triplet known/);
  assert.equal(check.stats(), { deferred: 2, passed: 2, autoWhitelisted: 0, whitelisted: 0, skipped: 0, storeFailures: 0 });
});

s('greylist-action and greylist-text as postgrey: %s and %r replaced, 4.2.0 unless the text has its own code', async () => {
  const { check, ctx } = setup({ reply: { action: '451', text: 'Greylisted, see https://mx.example/greylist/%r.html (%s s)' } });
  const r = await check.run(ctx({ recipient: 'Bob@Rcpt.Example' }));
  assert.is(r?.action, '451 4.2.0 Greylisted, see https://mx.example/greylist/Rcpt.Example.html (60 s)');
  assert.is(greylistAction({ action: 'DEFER', text: '4.7.1 wait %s s, %s s left' }, 30, 'a@b.example'), 'DEFER 4.7.1 wait 30 s, 30 s left');
  // The domain is the client's input going into an SMTP reply: only a domain's characters stay.
  assert.is(greylistAction({ action: 'DEFER_IF_PERMIT', text: 'see %r' }, 5, 'a@ex%ample.org<script>'), 'DEFER_IF_PERMIT 4.2.0 see example.orgscript');
  assert.is(greylistAction({ action: 'DEFER_IF_PERMIT', text: 'see %r' }, 5, 'a@[192.0.2.1]'), 'DEFER_IF_PERMIT 4.2.0 see [192.0.2.1]');
  // Whether the text has its own status code is decided on the text as configured (postgrey: before
  // %s and %r are replaced): a reply that starts with the seconds or a digit domain still gets 4.2.0.
  assert.is(greylistAction({ action: 'DEFER_IF_PERMIT', text: '%s seconds left' }, 42, 'a@b.example'), 'DEFER_IF_PERMIT 4.2.0 42 seconds left');
  assert.is(greylistAction({ action: '451', text: '%r greylists you' }, 5, 'a@123.example'), '451 4.2.0 123.example greylists you');
});

s('X-Greylist PREPEND on the first pass, once per message instance', async () => {
  const { clock, check, ctx } = setup({ xGreylistHeader: true });
  await check.run(ctx({ recipient: 'a@rcpt.example' }));
  await check.run(ctx({ recipient: 'b@rcpt.example' }));
  clock.advanceSec(61);
  const when = clock.nowMs();
  const first = await check.run(ctx({ recipient: 'a@rcpt.example', instance: 'msg-1' }));
  assert.is(first?.action, `PREPEND X-Greylist: delayed 61 seconds by mxsentry-0.1.0; ${rfc5322Date(when)}`);
  assert.is(rfc5322Date(when), 'Mon, 15 Jan 2024 10:31:01 +0000');
  const second = await check.run(ctx({ recipient: 'b@rcpt.example', instance: 'msg-1' }));
  assert.is(second?.action, 'DUNNO', 'same message, second recipient: no second header');
  assert.match(second?.reason ?? '', /passed/);
  const later = await check.run(ctx({ recipient: 'a@rcpt.example', instance: 'msg-2' }));
  assert.is(later?.action, 'DUNNO', 'not a first pass any more');
});

s('X-Greylist names the host that delayed the mail, as postgrey does', async () => {
  const { clock, check, ctx } = setup({ xGreylistHeader: true, hostname: 'mx2.example.net' });
  await check.run(ctx());
  clock.advanceSec(61);
  const r = await check.run(ctx({ instance: 'msg-9' }));
  assert.is(r?.action, `PREPEND X-Greylist: delayed 61 seconds by mxsentry-0.1.0 at mx2.example.net; ${rfc5322Date(clock.nowMs())}`);
});

s('instance memory is bounded (oldest forgotten)', async () => {
  const { clock, check, ctx } = setup({ xGreylistHeader: true, instanceCacheSize: 2 });
  for (const r of ['a', 'b', 'c', 'd']) await check.run(ctx({ recipient: `${r}@rcpt.example` }));
  clock.advanceSec(61);
  assert.match((await check.run(ctx({ recipient: 'a@rcpt.example', instance: 'i1' })))?.action ?? '', /^PREPEND/);
  assert.match((await check.run(ctx({ recipient: 'b@rcpt.example', instance: 'i2' })))?.action ?? '', /^PREPEND/);
  assert.match((await check.run(ctx({ recipient: 'c@rcpt.example', instance: 'i3' })))?.action ?? '', /^PREPEND/);
  assert.match((await check.run(ctx({ recipient: 'd@rcpt.example', instance: 'i1' })))?.action ?? '', /^PREPEND/, 'i1 was evicted');
});

s('client and recipient whitelists answer DUNNO without touching the store', async () => {
  const whitelist = PostgreyWhitelist.fromText(
    [{ source: 'c', text: 'sender.example\n203.0.113.0/24\n' }],
    [{ source: 'r', text: 'postmaster@\n' }],
  );
  const { store, check, ctx } = setup({ whitelist });
  let r = await check.run(ctx());
  assert.equal(r, { action: 'DUNNO', reason: 'greylist client whitelist: sender.example' });
  r = await check.run(ctx({ client_name: 'unknown', client_address: '203.0.113.5' }));
  assert.equal(r, { action: 'DUNNO', reason: 'greylist client whitelist: 203.0.113.0/24' });
  r = await check.run(ctx({ client_name: 'other.example', recipient: 'PostMaster@rcpt.example' }));
  assert.equal(r, { action: 'DUNNO', reason: 'greylist recipient whitelist: postmaster@' });
  assert.is(store.writes.length, 0);
  assert.is(check.stats().whitelisted, 3);
});

s('auto-whitelisted client passes a new triplet at once', async () => {
  const { clock, check, ctx } = setup({ config: { ...DEFAULT_GREYLIST_CONFIG, autoWhitelistClients: 2 } });
  const passes: string[] = [];
  for (let i = 0; i < 2; i++) {
    await check.run(ctx({ recipient: `r${i}@rcpt.example` }));
    clock.advanceSec(61);
    const pass = await check.run(ctx({ recipient: `r${i}@rcpt.example` }));
    assert.is(pass?.action, 'DUNNO');
    passes.push(pass?.reason ?? '');
    clock.advanceSec(3600);
  }
  // The pass that reaches the count says so (postgrey logs "whitelisted: name[ip]"); earlier ones do not.
  assert.match(passes[0] ?? '', /after 61s$/);
  assert.match(passes[1] ?? '', /after 61s; client 192\.0\.2\.\d+ auto-whitelisted after 2 passes$/, passes[1]);
  const r = await check.run(ctx({ recipient: 'new@rcpt.example' }));
  assert.is(r?.action, 'DUNNO');
  assert.match(r?.reason ?? '', /auto-whitelisted/);
  assert.is(check.stats().autoWhitelisted, 1);
});

s('record false (mxsentry check) decides from a read and writes nothing', async () => {
  const { store, check, ctx } = setup();
  const r = await check.run(ctx({}, false));
  assert.match(r?.action ?? '', /^DEFER_IF_PERMIT/);
  assert.is(store.writes.length, 0);
  assert.is(store.triplets.size, 0);
});

s('fail open: unhealthy store or a rejected transaction is DUNNO, logged at warn and counted', async () => {
  const cap = captureLogger();
  const { store, check, ctx, clock } = setup({ logger: cap.logger });
  store.healthy = false;
  let r = await check.run(ctx());
  assert.equal(r, { action: 'DUNNO', reason: 'greylist store unavailable: fail open' });
  store.healthy = true;
  store.failNext = new StoreError('STORE_ERR_MAP_FULL', 'map full');
  r = await check.run(ctx());
  assert.equal(r, { action: 'DUNNO', reason: 'greylist store unavailable: fail open' });
  store.failAlways = true;
  r = await check.run(ctx({}, false));
  assert.is(r?.action, 'DUNNO');
  assert.is(check.stats().storeFailures, 3);
  // At most one warning a second (each decision line says fail open anyway); the next one counts
  // those left out.
  let warns = cap.lines.filter((l) => l['level'] === 'warn');
  assert.is(warns.length, 1);
  assert.match(String(warns[0]?.['err']), /unhealthy/);
  clock.advanceMs(1000);
  r = await check.run(ctx());
  warns = cap.lines.filter((l) => l['level'] === 'warn');
  assert.is(warns.length, 2);
  assert.match(String(warns[1]?.['err']), /STORE_ERR/);
  assert.is(warns[1]?.['suppressed'], 2);
  store.failAlways = false;
  assert.match((await check.run(ctx()))?.action ?? '', /^DEFER_IF_PERMIT/, 'recovers with the store');
});

s('no client IP or no recipient: skipped with DUNNO; a bad client_address is also a warning', async () => {
  const cap = captureLogger();
  const { store, check, ctx } = setup({ logger: cap.logger });
  assert.equal(await check.run(ctx({ client_address: '' })), { action: 'DUNNO', reason: 'greylisting skipped: no client IP address' });
  assert.equal(await check.run(ctx({ recipient: '' })), { action: 'DUNNO', reason: 'greylisting skipped: no recipient' });
  assert.is(store.writes.length, 0);
  const warns = cap.lines.filter((l) => l['level'] === 'warn');
  assert.is(warns.length, 1);
  assert.match(String(warns[0]?.['msg']), /client_address is not an IP address/);
  assert.is(warns[0]?.['clientAddress'], '');
});

s('lookupByHost keys on the full address; IPv6 on the /64', async () => {
  const { store, check, ctx } = setup({ config: { ...DEFAULT_GREYLIST_CONFIG, lookupByHost: true } });
  await check.run(ctx({ client_address: '192.0.2.10' }));
  await check.run(ctx({ client_address: '192.0.2.11' }));
  assert.equal([...store.triplets.keys()], [
    '192.0.2.10/alice@sender.example/bob@rcpt.example', '192.0.2.11/alice@sender.example/bob@rcpt.example',
  ]);
  const v6 = setup();
  await v6.check.run(v6.ctx({ client_address: '2001:db8:1:2::a' }));
  await v6.check.run(v6.ctx({ client_address: '2001:db8:1:2:ffff::b' }));
  assert.equal([...v6.store.triplets.keys()], ['2001:db8:1:2::/alice@sender.example/bob@rcpt.example']);
  assert.equal([...v6.store.clients.keys()], []);
});

s('an over-long recipient is greylisted like any other, not waved through as a store failure', async () => {
  // Postfix accepts a 990-byte local part (a catch-all or relay domain delivers it); the LMDB store
  // refuses keys over 1000 bytes, which failed open as "greylist store unavailable".
  const clock = new ManualClock(Date.UTC(2024, 0, 15, 10, 30, 0));
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-greylist-check-'));
  const store = await LmdbGreylistStore.open({ dataDir: dir, clock, logger: createSilentLogger() });
  try {
    const check = createGreylistCheck({ store, logger: createSilentLogger(), config: { ...DEFAULT_GREYLIST_CONFIG }, nodeId: store.getNodeId(), version: '0.1.0', clock });
    const ctx = (recipient: string): CheckContext => {
      const request = { client_address: '192.0.2.10', client_name: 'unknown', sender: 'alice@sender.example', recipient, instance: 'i1' };
      return { request, clientAddress: request.client_address, deadlineAtMs: clock.nowMs() + 5000, nowMs: clock.nowMs(), record: true, memo: new Map() };
    };
    const long = `${'b'.repeat(990)}@rcpt.example`;
    let r = await check.run(ctx(long));
    assert.is(r?.action, 'DEFER_IF_PERMIT 4.2.0 Greylisted by mxsentry, try again in 60 seconds');
    assert.match(r?.reason ?? '', /\(new, 60s to wait\)$/);
    clock.advanceSec(61);
    r = await check.run(ctx(`${'b'.repeat(989)}c@rcpt.example`));
    assert.match(r?.reason ?? '', /\(new, 60s to wait\)$/, 'another long recipient is another triplet');
    r = await check.run(ctx(long));
    assert.is(r?.action, 'DUNNO');
    assert.match(r?.reason ?? '', /^greylist passed .* after 61s$/);
    assert.is(check.stats().storeFailures, 0);
    assert.ok(store.isHealthy());
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

s.run();
