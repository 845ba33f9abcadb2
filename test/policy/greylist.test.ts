// Tests for the pure greylist rules: triplet keys, sender normalisation and postgrey's decision.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  clientKey, clientNetwork, decideGreylist, DEFAULT_GREYLIST_CONFIG, normaliseSender, TRIPLET_TOUCH_INTERVAL_MS, tripletKey,
  type GreylistConfig,
} from '../../src/policy/greylist.js';
import { mergeTriplet, type ClientRecord, type TripletRecord } from '../../src/store/greylist-types.js';
import { MAX_KEY_BYTES } from '../../src/store/record-codec.js';

const s = suite('policy/greylist');
const cfg: GreylistConfig = { ...DEFAULT_GREYLIST_CONFIG };
const T0 = 1_700_000_000_000;
const SEC = 1000;
const HOUR = 3600 * SEC;
const DAY = 24 * HOUR;

const senders: [string, string][] = [
  ['', ''],
  ['User@Example.COM', 'user@example.com'],
  ['user+news@example.com', 'user@example.com'],
  ['user+a+b@example.com', 'user@example.com'],
  ['bounce-123-4567@lists.example.org', 'bounce-#-#@lists.example.org'],
  ['123@example.com', '#@example.com'],
  ['user2@example.com', 'user2@example.com'],
  ['list-bounces+user=example.com@lists.example.org', 'list-bounces@lists.example.org'],
  ['prvs=1234abcdef=alice@example.com', 'alice@example.com'],
  ['PRVS=0123456789=Alice@Example.com', 'alice@example.com'],
  ['prvs=alice=1234abcdef@example.com', 'alice@example.com'],
  ['msprvs1=17a6cb1z=bounces-123@mail.example.com', 'bounces-#@mail.example.com'],
  ['btv1==0b1a2c3d4e5==bob@example.net', 'bob@example.net'],
  ['SRS0=HHH=TT=orig.example=alice@forwarder.example', 'alice@orig.example'],
  ['SRS0+xyz1=AB=orig.example=Alice+tag@fwd.example', 'alice@orig.example'],
  ['SRS1=HHH=first.example==HHH=TT=orig.example=alice@second.example', 'alice@orig.example'],
  ['SRS0=h=tt=orig.example=prvs=1234abcdef=carol@fwd.example', 'carol@orig.example'],
  ['postmaster', 'postmaster'],
];
for (const [input, want] of senders) {
  s(`normaliseSender ${JSON.stringify(input)}`, () => {
    assert.is(normaliseSender(input), want);
  });
}

s('client network: IPv4 /24, IPv6 /64, host lookup, mapped IPv4, custom prefixes', () => {
  const net = { lookupByHost: false };
  const host = { lookupByHost: true };
  assert.is(clientNetwork('192.0.2.77', net), '192.0.2.0');
  assert.is(clientNetwork('192.0.2.77', host), '192.0.2.77');
  assert.is(clientNetwork('2001:db8:1:2:3:4:5:6', net), '2001:db8:1:2::');
  assert.is(clientNetwork('2001:DB8:1:2:3:4:5:6', host), '2001:db8:1:2:3:4:5:6');
  assert.is(clientNetwork('::ffff:192.0.2.77', net), '192.0.2.0');
  assert.is(clientNetwork('192.0.2.77', { lookupByHost: false, ipv4Prefix: 16 }), '192.0.0.0');
  assert.is(clientNetwork('2001:db8:1:2:3:4:5:6', { lookupByHost: false, ipv6Prefix: 48 }), '2001:db8:1::');
  assert.throws(() => clientNetwork('unknown', net), /not an IP address/);
});

s('tripletKey: neighbours in a /24 share a key unless lookupByHost', () => {
  const a = tripletKey('192.0.2.1', 'Bounce-42@Example.com', 'Rcpt@Example.NET', { lookupByHost: false });
  const b = tripletKey('192.0.2.200', 'bounce-43@example.com', 'rcpt@example.net', { lookupByHost: false });
  assert.is(a, '192.0.2.0/bounce-#@example.com/rcpt@example.net');
  assert.is(a, b);
  assert.is.not(tripletKey('192.0.3.1', 'x@y.z', 'r@s.t', { lookupByHost: false }), tripletKey('192.0.2.1', 'x@y.z', 'r@s.t', { lookupByHost: false }));
  assert.is.not(tripletKey('192.0.2.1', 'x@y.z', 'r@s.t', { lookupByHost: true }), tripletKey('192.0.2.2', 'x@y.z', 'r@s.t', { lookupByHost: true }));
  assert.is(tripletKey('2001:db8::1', '', 'r@s.t', { lookupByHost: false }), tripletKey('2001:db8::ffff:1', '', 'r@s.t', { lookupByHost: false }));
  assert.is(clientKey('::FFFF:192.0.2.1'), '192.0.2.1');
});

s('tripletKey: an over-long recipient still gives a key the store takes, one per recipient, stable', () => {
  const net = { lookupByHost: false };
  const long = `${'b'.repeat(990)}@rcpt.example`;
  const key = tripletKey('192.0.2.1', 'alice@sender.example', long, net);
  assert.ok(Buffer.byteLength(key) <= MAX_KEY_BYTES, `${Buffer.byteLength(key)} bytes`);
  assert.ok(key.startsWith('192.0.2.0/alice@sender.example/bbbb'), 'readable, and found by --prefix');
  assert.is(tripletKey('192.0.2.77', 'Alice@Sender.example', long.toUpperCase(), net), key, 'normalised like any key');
  assert.is.not(tripletKey('192.0.2.1', 'alice@sender.example', `${'b'.repeat(989)}c@rcpt.example`, net), key);
  assert.is.not(tripletKey('192.0.2.1', 'carol@sender.example', long, net), key);
  // Multi-byte characters are never cut in half.
  const utf8 = tripletKey('2001:db8::1', 'alice@sender.example', `${'\u00e9'.repeat(700)}@rcpt.example`, net);
  assert.ok(Buffer.byteLength(utf8) <= MAX_KEY_BYTES);
  assert.not.ok(utf8.includes('\ufffd'));
  // Every key the store took before stays as it was.
  const fits = `192.0.2.0/a@b.example/${'c'.repeat(1000 - 35)}@rcpt.example`;
  assert.is(Buffer.byteLength(fits), MAX_KEY_BYTES);
  assert.is(tripletKey('192.0.2.1', 'a@b.example', `${'c'.repeat(1000 - 35)}@rcpt.example`, net), fits);
});

s('first seen: defer with the full delay, record first = last = now', () => {
  const d = decideGreylist(undefined, undefined, T0, cfg, 'n1');
  assert.is(d.verdict, 'defer');
  assert.is(d.retryAfterSec, 60);
  assert.equal(d.update.triplet, { firstSeenMs: T0, lastSeenMs: T0, passedAtMs: 0, passes: {} });
  assert.is(d.update.client, undefined);
});

s('early retry: defer with the remaining seconds, last updated, first kept', () => {
  const t: TripletRecord = { firstSeenMs: T0, lastSeenMs: T0, passedAtMs: 0, passes: {} };
  const d = decideGreylist(t, undefined, T0 + 25 * SEC + 500, cfg, 'n1');
  assert.is(d.verdict, 'defer');
  assert.is(d.retryAfterSec, 35);
  assert.equal(d.update.triplet, { firstSeenMs: T0, lastSeenMs: T0 + 25_500, passedAtMs: 0, passes: {} });
  const late = decideGreylist(t, undefined, T0 + 59_999, cfg, 'n1');
  assert.is(late.verdict, 'defer');
  assert.is(late.retryAfterSec, 1);
});

s('after the delay: pass, first pass, delayed seconds, client counted once', () => {
  const t: TripletRecord = { firstSeenMs: T0, lastSeenMs: T0 + 10 * SEC, passedAtMs: 0, passes: {} };
  const d = decideGreylist(t, undefined, T0 + 61 * SEC, cfg, 'n1');
  assert.is(d.verdict, 'pass');
  assert.ok(d.firstPass);
  assert.is(d.delayedSec, 61);
  assert.equal(d.update.triplet, { firstSeenMs: T0, lastSeenMs: T0 + 61 * SEC, passedAtMs: T0 + 61 * SEC, passes: { n1: 1 } });
  assert.equal(d.update.client, { firstSeenMs: T0 + 61 * SEC, lastSeenMs: T0 + 61 * SEC, lastCountedMs: T0 + 61 * SEC, passes: { n1: 1 } });
  // Exactly at the delay passes too (postgrey: diff > 0 defers, 0 passes).
  assert.is(decideGreylist(t, undefined, T0 + 60 * SEC, cfg, 'n1').verdict, 'pass');
});

s('an already passed triplet passes without counting the client again', () => {
  const t: TripletRecord = { firstSeenMs: T0, lastSeenMs: T0 + 61 * SEC, passedAtMs: T0 + 61 * SEC, passes: { n1: 1, n2: 3 } };
  const d = decideGreylist(t, undefined, T0 + DAY, cfg, 'n1');
  assert.is(d.verdict, 'pass');
  assert.not.ok(d.firstPass);
  assert.is(d.delayedSec, 0);
  assert.equal(d.update.triplet?.passes, { n1: 2, n2: 3 });
  assert.is(d.update.client, undefined);
});

s('a passed triplet is written again at most once an hour: passes within it change nothing', () => {
  const seen = T0 + 61 * SEC;
  const t: TripletRecord = { firstSeenMs: T0, lastSeenMs: seen, passedAtMs: seen, passes: { n1: 1 } };
  const soon = decideGreylist(t, undefined, seen + TRIPLET_TOUCH_INTERVAL_MS - 1, cfg, 'n1');
  assert.is(soon.verdict, 'pass');
  assert.not.ok(soon.firstPass);
  assert.equal(soon.update, {}, 'nothing to write: no commit to wait for');
  const later = decideGreylist(t, undefined, seen + TRIPLET_TOUCH_INTERVAL_MS, cfg, 'n1');
  assert.equal(later.update.triplet, { firstSeenMs: T0, lastSeenMs: seen + TRIPLET_TOUCH_INTERVAL_MS, passedAtMs: seen, passes: { n1: 2 } });
  // A last seen ahead of this clock (another node's) is recent as well: no write on every pass.
  const ahead: TripletRecord = { ...t, lastSeenMs: seen + 10 * SEC };
  assert.equal(decideGreylist(ahead, undefined, seen, cfg, 'n1').update, {});
  // The first pass is always written (it records the pass and counts the client).
  const waiting: TripletRecord = { firstSeenMs: T0, lastSeenMs: T0 + 59 * SEC, passedAtMs: 0, passes: {} };
  assert.ok(decideGreylist(waiting, undefined, T0 + 60 * SEC, cfg, 'n1').update.triplet);
});

s('retry window: a never-passed triplet idle longer than 2 d starts over', () => {
  const t: TripletRecord = { firstSeenMs: T0, lastSeenMs: T0 + 10 * SEC, passedAtMs: 0, passes: {} };
  const now = T0 + 10 * SEC + 2 * DAY + SEC;
  const d = decideGreylist(t, undefined, now, cfg, 'n1');
  assert.is(d.verdict, 'defer');
  assert.is(d.retryAfterSec, 60);
  assert.equal(d.update.triplet, { firstSeenMs: now, lastSeenMs: now, passedAtMs: 0, passes: {}, epoch: 1 }, "a new generation starts");
  // Just inside the window from first seen it still passes.
  assert.is(decideGreylist(t, undefined, T0 + 2 * DAY, cfg, 'n1').verdict, 'pass');
});

s('retry window counts from first seen, as postgrey: an early retry does not extend it', () => {
  // Deferred at T0, retried early at T0 + 200 s (last seen), then again just over 2 d after T0:
  // postgrey starts over ("now - first > retry_window"), though the last retry is recent.
  const t: TripletRecord = { firstSeenMs: T0, lastSeenMs: T0 + 200 * SEC, passedAtMs: 0, passes: {} };
  const late = decideGreylist(t, undefined, T0 + 2 * DAY + 100 * SEC, { ...cfg, delaySec: 300 }, 'n1');
  assert.is(late.verdict, 'defer');
  assert.is(late.newTriplet, true);
  assert.is(late.update.triplet?.firstSeenMs, T0 + 2 * DAY + 100 * SEC);
  // A triplet that passed keeps passing (max-age rules it).
  const passed: TripletRecord = { ...t, passedAtMs: T0 + 300 * SEC };
  assert.is(decideGreylist(passed, undefined, T0 + 3 * DAY, cfg, 'n1').verdict, 'pass');
});

s('a restarted triplet (epoch > 0) keeps its epoch when it passes, so the pass is not lost in the merge', () => {
  const t: TripletRecord = { firstSeenMs: T0, lastSeenMs: T0, passedAtMs: 0, passes: {}, epoch: 2 };
  const d = decideGreylist(t, undefined, T0 + 61 * SEC, cfg, 'n1');
  assert.is(d.verdict, 'pass');
  assert.is(d.update.triplet?.epoch, 2);
  const stored = mergeTriplet(t, d.update.triplet!);
  assert.is(stored.passedAtMs, T0 + 61 * SEC, 'the stored record remembers the pass');
  assert.equal(stored.passes, { n1: 1 });
  const later = decideGreylist(stored, undefined, T0 + 120 * SEC, cfg, 'n1');
  assert.is(later.firstPass, false, 'the next retry is not another first pass (no second X-Greylist header)');
});

s('retry window does not apply to a triplet that passed; max age (35 d) does', () => {
  const t: TripletRecord = { firstSeenMs: T0, lastSeenMs: T0 + 61 * SEC, passedAtMs: T0 + 61 * SEC, passes: { n1: 1 } };
  assert.is(decideGreylist(t, undefined, T0 + 61 * SEC + 30 * DAY, cfg, 'n1').verdict, 'pass');
  assert.is(decideGreylist(t, undefined, T0 + 61 * SEC + 35 * DAY, cfg, 'n1').verdict, 'pass');
  const expired = decideGreylist(t, undefined, T0 + 61 * SEC + 35 * DAY + 1, cfg, 'n1');
  assert.is(expired.verdict, 'defer');
  assert.is(expired.update.triplet?.passedAtMs, 0);
});

s('first seen in the future is corrected to now', () => {
  const t: TripletRecord = { firstSeenMs: T0 + HOUR, lastSeenMs: T0 + HOUR, passedAtMs: 0, passes: {} };
  const d = decideGreylist(t, undefined, T0, cfg, 'n1');
  assert.is(d.verdict, 'defer');
  assert.is(d.retryAfterSec, 60);
  assert.is(d.update.triplet?.firstSeenMs, T0);
});

s('auto-whitelist: 5 counted passes whitelist the client; one count per hour at most', () => {
  let client: ClientRecord | undefined;
  let now = T0;
  const passTriplet = (): TripletRecord => ({ firstSeenMs: now - 120 * SEC, lastSeenMs: now - 120 * SEC, passedAtMs: 0, passes: {} });
  // Two first passes within the same hour count once.
  let d = decideGreylist(passTriplet(), client, now, cfg, 'n1');
  client = d.update.client;
  assert.is(d.clientPasses, 1);
  now += 30 * 60 * SEC;
  d = decideGreylist(passTriplet(), client, now, cfg, 'n1');
  assert.is(d.verdict, 'pass');
  assert.is(d.update.client, undefined, 'second pass within the hour is not counted');
  for (let i = 2; i <= 5; i++) {
    now += HOUR;
    d = decideGreylist(passTriplet(), client, now, cfg, 'n2');
    assert.is(d.verdict, 'pass');
    client = d.update.client;
    assert.is(d.clientPasses, i);
  }
  assert.equal(client?.passes, { n1: 1, n2: 4 });
  // Now a brand-new triplet from this client passes at once.
  now += 10 * SEC;
  d = decideGreylist(undefined, client, now, cfg, 'n1');
  assert.is(d.verdict, 'whitelisted');
  assert.is(d.update.triplet, undefined);
  assert.is(d.update.client, undefined, 'counted less than an hour ago');
  now += HOUR;
  d = decideGreylist(undefined, client, now, cfg, 'n1');
  assert.is(d.verdict, 'whitelisted');
  assert.is(d.update.client?.lastCountedMs, now);
  assert.is(d.clientPasses, 6);
});

s('auto-whitelist off (0) and expired client records', () => {
  const client: ClientRecord = { firstSeenMs: T0, lastSeenMs: T0, lastCountedMs: T0, passes: { n1: 9 } };
  assert.is(decideGreylist(undefined, client, T0 + HOUR, { ...cfg, autoWhitelistClients: 0 }, 'n1').verdict, 'defer');
  assert.is(decideGreylist(undefined, client, T0 + HOUR, cfg, 'n1').verdict, 'whitelisted');
  assert.is(decideGreylist(undefined, client, T0 + 35 * DAY + 1, cfg, 'n1').verdict, 'defer', 'client older than max age is forgotten');
});

s('delay 0 passes a new triplet at once', () => {
  const d = decideGreylist(undefined, undefined, T0, { ...cfg, delaySec: 0 }, 'n1');
  assert.is(d.verdict, 'pass');
  assert.ok(d.firstPass);
});

s.run();
