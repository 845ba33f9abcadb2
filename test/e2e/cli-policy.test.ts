// `mxsentry check`, `rbl` and `greylist` as an admin runs them: the built CLI on a temp data dir
// holding the daemon's store and the fake tree's DNSBL. `check` must decide without writing to the
// greylist store, and no command may create a store where the daemon has none; the commands that
// only read leave its data file as it was (bytes and modification time).
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DEFAULT_CONFIG_FILE } from '../../src/cli/control-cli.js';
import { LmdbGreylistStore } from '../../src/store/lmdb-greylist-store.js';
import { systemClock } from '../../src/util/clock.js';
import { createSilentLogger } from '../../src/util/logger.js';
import { freeLoopbackPort, MXSENTRY_BIN, removeTempDir, startSharedPortTree, writeTempFile, type SharedPortTree } from '../helpers/daemon.js';
import { standardTree } from '../helpers/fake-hierarchy.js';
import { loggedHook } from '../helpers/hook-errors.js';
import { requireRoot, skipTest } from '../helpers/peers.js';

const run = promisify(execFile);
const s = suite('e2e: mxsentry check / rbl / greylist');
let tree: SharedPortTree;
let hints: { dir: string; file: string };

s.before(loggedHook(async () => {
  tree = await startSharedPortTree(standardTree());
  hints = writeTempFile('root.hints', tree.rootHints);
  // The store a daemon made at its first start.
  const store = await LmdbGreylistStore.open({ dataDir: `${hints.dir}/data`, clock: systemClock, logger: createSilentLogger() });
  await store.close();
}));
s.after(async () => {
  await tree.stop();
  removeTempDir(hints.dir);
});

function resolverFlags(): string[] {
  return ['--root-hints', hints.file, '--query-loopback', '--upstream-port', String(tree.port), '--dnsbl', 'dnsbl.example.net=127.0.0.[2..11]'];
}

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return cliIn(undefined, ...args, '--data-dir', `${hints.dir}/data`);
}

/** Runs the CLI with the resolver flags, in `cwd` when given. */
async function cliIn(cwd: string | undefined, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [MXSENTRY_BIN, ...args, ...resolverFlags()], { timeout: 20_000, ...(cwd ? { cwd } : {}) });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const envelope = ['--helo', 'mx.example.org', '--sender', 'a@example.org', '--recipient', 'b@example.com'];

s('check: a single-label HELO is rejected at step 2 unless helo-require-fqdn is off', async () => {
  const exch = ['--helo', 'EXCH01', '--sender', 'a@example.org', '--recipient', 'b@example.com'];
  const strict = await cli('check', '--client-address', '192.0.2.46', ...exch);
  assert.is(strict.code, 1, strict.stderr);
  assert.match(strict.stdout, /action=504 5\.5\.2 <EXCH01>: Helo command rejected: need fully-qualified hostname/);
  const relaxed = await cli('check', '--client-address', '192.0.2.46', ...exch, '--helo-require-fqdn', 'no');
  assert.is(relaxed.code, 3, relaxed.stderr);
  assert.match(relaxed.stdout, /step: 10 \(greylist\)/);
});

s('check: a new triplet would be greylisted (exit 3), and nothing is recorded', async () => {
  const r = await cli('check', '--client-address', '192.0.2.44', ...envelope);
  assert.is(r.code, 3, r.stderr);
  assert.match(r.stdout, /action=DEFER_IF_PERMIT 4\.2\.0/);
  assert.match(r.stdout, /step: 10 \(greylist\)/);
  const again = await cli('check', '--client-address', '192.0.2.44', ...envelope);
  assert.match(again.stdout, /DEFER_IF_PERMIT/, 'still new: check wrote nothing');
  const list = await cli('greylist', 'list');
  assert.is(list.stdout.trim(), '', 'the store holds no triplet');
  assert.match(list.stderr, /^no triplets in /, 'and says so on stderr');
});

s('check and greylist list, clients and stats leave data.mdb as it was (bytes, modification time); whitelist writes it', async () => {
  const file = `${hints.dir}/data/greylist/data.mdb`;
  const fingerprint = (): string => `${createHash('sha256').update(readFileSync(file)).digest('hex')} ${statSync(file, { bigint: true }).mtimeNs}`;
  const before = fingerprint();
  for (const args of [['check', '--client-address', '192.0.2.47', ...envelope], ['greylist', 'list'], ['greylist', 'clients'], ['greylist', 'stats']]) {
    const r = await cli(...args);
    assert.ok(r.code === 0 || r.code === 3, `${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
    assert.is(fingerprint(), before, `${args.join(' ')} changed data.mdb`);
  }
  // The store is the one they read: a command that writes does change it.
  const temp = mkdtempSync(join(hints.dir, 'copy-'));
  try {
    const store = await LmdbGreylistStore.open({ dataDir: temp, clock: systemClock, logger: createSilentLogger() });
    await store.close();
    const copy = join(temp, 'greylist', 'data.mdb');
    const copyBefore = readFileSync(copy);
    const w = await cliIn(undefined, 'greylist', 'whitelist', '192.0.2.48', '--data-dir', temp);
    assert.is(w.code, 0, w.stderr);
    assert.not.equal(readFileSync(copy), copyBefore);
  } finally {
    rmSync(temp, { recursive: true, force: true });
  }
});

s('greylist list and stats read a store on a read-only filesystem (a snapshot mounted ro), as read-only LMDB can', async () => {
  const name = 'read commands on a read-only filesystem';
  if (!requireRoot(name)) return;
  const dataDir = mkdtempSync(join(hints.dir, 'ro-'));
  try {
    const store = await LmdbGreylistStore.open({ dataDir, clock: systemClock, logger: createSilentLogger() });
    await store.close();
    // In a mount namespace of its own, the data dir bound read-only over itself: only that command sees it so.
    const roCli = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
      run('unshare', ['--mount', 'sh', '-c', 'mount --bind -o ro "$0" "$0" && exec "$@"', dataDir, process.execPath, MXSENTRY_BIN, ...args, '--data-dir', dataDir], { timeout: 20_000 })
        .then((r) => ({ code: 0, ...r }), (e: { code: number; stdout: string; stderr: string }) => e);
    const probe = await run('unshare', ['--mount', 'sh', '-c', 'mount --bind -o ro "$0" "$0" && ! touch "$0/x" 2>/dev/null', dataDir]).then(() => true, () => false);
    if (!probe) {
      skipTest(name, 'no mount namespace with a read-only bind mount here', { evenInCi: true });
      return;
    }
    for (const args of [['greylist', 'stats'], ['greylist', 'list']]) {
      const r = await roCli(...args);
      assert.is(r.code, 0, `${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
      // Nor is closing it a problem: a read-only open needs no writable store.
      assert.not.match(r.stderr, /no longer readable and writable/, `${args.join(' ')}: ${r.stderr}`);
    }
    // A command that writes still says the folder is not writable.
    const w = await roCli('greylist', 'whitelist', '192.0.2.49');
    assert.is.not(w.code, 0);
    assert.match(w.stderr, /EROFS/);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

s('check: a first pass shows the daemon\'s X-Greylist header, this host\'s name included', async () => {
  // With no delay a new triplet passes at once: its first pass carries the header.
  const r = await cli('check', '--client-address', '192.0.2.45', ...envelope, '--delay', '0');
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, `action=PREPEND X-Greylist: delayed 0 seconds by mxsentry-`);
  assert.match(r.stdout, ` at ${hostname()}; `);
});

s('check: "<>" is the null sender and <addr> an address, as in Postfix\'s MAIL FROM / RCPT TO and logs', async () => {
  // Postfix sends the null sender as an empty sender= and strips the brackets of <addr>; an admin
  // copying from=<> out of the mail log must get the bounce's decision, not a syntax reject.
  const bounce = await cli('check', '--client-address', '192.0.2.45', '--helo', 'mx.example.org', '--sender', '<>', '--recipient', '<b@example.com>');
  assert.is(bounce.code, 3, bounce.stdout + bounce.stderr);
  assert.match(bounce.stdout, /step: 10 \(greylist\)/);
  assert.match(bounce.stdout, /192\.0\.2\.0\/\/b@example\.com/, 'the null sender\'s triplet, recipient without brackets');
  const bracketed = await cli('check', '--client-address', '192.0.2.45', '--helo', 'mx.example.org', '--sender', '<a@example.org>', '--recipient', 'b@example.com');
  assert.match(bracketed.stdout, /192\.0\.2\.0\/a@example\.org\/b@example\.com/);
});

s('check and rbl refuse an argument that is not an IP address (exit 2)', async () => {
  const c = await cli('check', '--client-address', 'notanip', ...envelope);
  assert.is(c.code, 2);
  assert.match(c.stderr, /--client-address must be an IP address/);
  const r = await cli('rbl', '1.2.3');
  assert.is(r.code, 2);
  assert.match(r.stderr, /IP address/);
});

s('rbl with no list configured: exit 2, not the 0 of "not listed"', async () => {
  // Without resolverFlags(), which configure a DNSBL: no list at all.
  let r: { code: number; stdout: string; stderr: string };
  try {
    r = { code: 0, ...(await run(process.execPath, [MXSENTRY_BIN, 'rbl', '127.0.0.2', '--data-dir', `${hints.dir}/data`], { timeout: 20_000 })) };
  } catch (err) {
    r = err as { code: number; stdout: string; stderr: string };
  }
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, /no DNSBL\/DNSWL configured .*nothing to look the address up in/);
  assert.is(r.stdout, '');
});

s('check: a DNSBL-listed client is rejected at step 8 (exit 1)', async () => {
  const r = await cli('check', '--client-address', '127.0.0.2', ...envelope);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stdout, /action=554 5\.7\.1 .*dnsbl\.example\.net/);
  assert.match(r.stdout, /step: 8 \(dnsbl\)/);
});

s('rbl: raw answers, TXT and verdict per list', async () => {
  const r = await cli('rbl', '127.0.0.2');
  assert.is(r.code, 1, 'listed in a DNSBL');
  assert.match(r.stdout, /answers: 127\.0\.0\.2/);
  assert.match(r.stdout, /txt:\s+Listed: test entry/);
  assert.match(r.stdout, /verdict: listed/);
  assert.match(r.stdout, /^block    score 1 \(dnsbl-threshold 1\): step 8 rejects the client$/m);
  const clean = await cli('rbl', '127.0.0.1');
  assert.is(clean.code, 0);
  assert.match(clean.stdout, /verdict: not-listed/);
  assert.match(clean.stdout, /^block    score 0 \(dnsbl-threshold 1\): below the threshold$/m);
});

s('rbl: exit 1 only when step 8 would reject: the weights against dnsbl-threshold, as postscreen', async () => {
  // Listed with weight 1, but two lists must agree (postscreen_dnsbl_threshold = 2).
  const below = await cli('rbl', '127.0.0.2', '--dnsbl-threshold', '2');
  assert.is(below.code, 0, below.stdout);
  assert.match(below.stdout, /verdict: listed/);
  assert.match(below.stdout, /^block    score 1 \(dnsbl-threshold 2\): below the threshold$/m);
  const check = await cli('check', '--client-address', '127.0.0.2', ...envelope, '--dnsbl-threshold', '2');
  assert.not.match(check.stdout, /step: 8/, 'check agrees: no reject at step 8');
  // A postscreen allowlist entry (negative weight) in the same tier cancels the listing (the
  // resolver flags add dnsbl.example.net=127.0.0.[2..11] after it).
  const offset = await cli('rbl', '127.0.0.2', '--dnsbl', 'dnsbl.example.net=127.0.0.2*-1');
  assert.is(offset.code, 0, offset.stdout);
  assert.match(offset.stdout, /^block    score 0 \(dnsbl-threshold 1\): below the threshold$/m);
});

s('rbl: a client a trusted DNSWL passes at step 7 exits 0, though it is also on a DNSBL (as check decides)', async () => {
  const trusted = ['--dnswl-trusted', 'dnsbl.example.net=127.0.0.2'];
  const r = await cli('rbl', '127.0.0.2', ...trusted);
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^trusted  score 1 \(acts at 1\): step 7 passes the client$/m);
  assert.match(r.stdout, /^block    score 1 \(dnsbl-threshold 1\): step 8 rejects the client, but step 7 passed it first$/m);
  const check = await cli('check', '--client-address', '127.0.0.2', ...envelope, ...trusted);
  assert.is(check.code, 0, check.stdout);
  assert.match(check.stdout, /step: 7 /);
});

s('check and rbl ignore a list that lists the test point 127.0.0.1, as the daemon does', async () => {
  // A list that answers every query: 127.0.0.1 and the client listed alike.
  const spec = standardTree();
  spec.zones['dnsbl.example.net.']!.records.push('1.0.0.127 300 IN A 127.0.0.2', '70.2.0.192 300 IN A 127.0.0.2');
  const listsAll = await startSharedPortTree(spec);
  const allHints = writeTempFile('root.hints', listsAll.rootHints);
  try {
    const flags = ['--root-hints', allHints.file, '--query-loopback', '--upstream-port', String(listsAll.port), '--dnsbl', 'dnsbl.example.net=127.0.0.[2..11]', '--data-dir', `${hints.dir}/data`];
    const call = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
      run(process.execPath, [MXSENTRY_BIN, ...args, ...flags], { timeout: 20_000 }).then((r) => ({ code: 0, ...r }), (e: { code: number; stdout: string; stderr: string }) => e);
    const rbl = await call('rbl', '192.0.2.70');
    assert.is(rbl.code, 3, rbl.stdout + rbl.stderr);
    assert.match(rbl.stdout, /verdict: skipped \(list suspended: its self test found 127\.0\.0\.1 listed/);
    const check = await call('check', '--client-address', '192.0.2.70', ...envelope);
    assert.not.match(check.stdout, /step: 8/, check.stdout);
    assert.is(check.code, 3, 'greylisted, as by the daemon');
  } finally {
    await listsAll.stop();
    removeTempDir(allHints.dir);
  }
});

s('rbl: exit 3 when no list could be asked (the list servers do not answer), never "clean"', async () => {
  // The same lists, with upstream queries sent to a loopback port nobody answers on.
  const dead = await freeLoopbackPort();
  const flags = resolverFlags().map((f) => (f === String(tree.port) ? String(dead) : f));
  let r: { code: number; stdout: string };
  try {
    const out = await run(process.execPath, [MXSENTRY_BIN, 'rbl', '127.0.0.1', ...flags, '--dns-list-budget-ms', '300', '--data-dir', `${hints.dir}/data`], { timeout: 20_000 });
    r = { code: 0, stdout: out.stdout };
  } catch (err) {
    r = err as { code: number; stdout: string };
  }
  assert.is(r.code, 3, r.stdout);
  // Nothing listens there: the port is unreachable at once, and rbl says so rather than "timeout".
  assert.match(r.stdout, /verdict: failed \(SERVFAIL \(no-servers: 127\.53\.0\.\d unreachable \(network error\)/);
});

s('rbl: a list whose servers answer SERVFAIL or REFUSED, or cannot be reached, is a failed lookup saying which, not a timeout', async () => {
  const cases: Array<['servfail' | 'refused' | 'closed', string]> = [
    ['servfail', 'SERVFAIL (no-servers: 127.53.4.1 SERVFAIL)'],
    ['refused', 'SERVFAIL (no-servers: 127.53.4.1 REFUSED)'],
    ['closed', 'SERVFAIL (no-servers: 127.53.4.1 unreachable (network error))'],
  ];
  for (const [behaviour, detail] of cases) {
    const spec = standardTree();
    spec.servers.find((x) => x.address === '127.53.4.1')!.behaviour = behaviour;
    const broken = await startSharedPortTree(spec);
    const brokenHints = writeTempFile('root.hints', broken.rootHints);
    try {
      const flags = ['--root-hints', brokenHints.file, '--query-loopback', '--upstream-port', String(broken.port), '--dnsbl', 'dnsbl.example.net', '--data-dir', `${hints.dir}/data`];
      const r = await run(process.execPath, [MXSENTRY_BIN, 'rbl', '192.0.2.9', ...flags], { timeout: 20_000 }).then((x) => ({ code: 0, ...x }), (e: { code: number; stdout: string; stderr: string }) => e);
      assert.is(r.code, 3, `${behaviour}: ${r.stdout}${r.stderr}`);
      assert.ok(r.stdout.includes(`  verdict: failed (${detail})\n`), `${behaviour}: ${r.stdout}`);
      assert.not.match(r.stdout, /timeout/, behaviour);
      const json = await run(process.execPath, [MXSENTRY_BIN, 'rbl', '192.0.2.9', '--json', ...flags], { timeout: 20_000 }).then((x) => x.stdout, (e: { stdout: string }) => e.stdout);
      assert.equal((JSON.parse(json) as Array<{ verdict: string; rcode: number }>).map((x) => [x.verdict, x.rcode]), [['failed', 2]], behaviour);
    } finally {
      await broken.stop();
      removeTempDir(brokenHints.dir);
    }
  }
});

s('greylist whitelist makes a client pass, visible to check', async () => {
  const w = await cli('greylist', 'whitelist', '192.0.2.55');
  assert.is(w.code, 0, w.stderr);
  const r = await cli('check', '--client-address', '192.0.2.55', ...envelope);
  assert.is(r.code, 0);
  assert.match(r.stdout, /action=DUNNO/);
  const stats = await cli('greylist', 'stats');
  assert.match(stats.stdout, /clients 1/);
  // The configured threshold is what the record reaches, so check with that threshold passes too.
  const high = await cli('greylist', 'whitelist', '192.0.2.56', '--auto-whitelist-clients', '10');
  assert.is(high.code, 0, high.stderr);
  assert.match(high.stdout, /10 passes/);
  const r10 = await cli('check', '--client-address', '192.0.2.56', '--auto-whitelist-clients', '10', ...envelope);
  assert.match(r10.stdout, /action=DUNNO/);
  // With auto-whitelisting off, or for a network, a client record would whitelist nothing: refused.
  const off = await cli('greylist', 'whitelist', '192.0.2.57', '--auto-whitelist-clients', '0');
  assert.is(off.code, 2);
  assert.match(off.stderr, /whitelist-clients file/);
  const net = await cli('greylist', 'whitelist', '192.0.2.0/24');
  assert.is(net.code, 2);
  assert.match(net.stderr, /is a network/);
  assert.match((await cli('greylist', 'stats')).stdout, /clients 2/);
});

s('greylist whitelist and delete without a usable target are bad usage (exit 2), not a failure', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['greylist', 'whitelist'], /greylist whitelist needs the client's IP address/],
    [['greylist', 'whitelist', 'mail.example.org'], /greylist whitelist takes an IP address, got "mail\.example\.org"/],
    [['greylist', 'delete'], /greylist delete needs a triplet key/],
    [['greylist', 'delete', 'nonsense'], /"nonsense" is not a triplet key: CLIENT-NETWORK\/SENDER\/RECIPIENT/],
  ];
  for (const [args, message] of cases) {
    const r = await cli(...args);
    assert.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
    assert.not.match(r.stderr, /POLICY_ERR_/, 'no internal error code for a typo');
    assert.is(r.stdout, '');
  }
});

s('a broken configuration file: the offline commands list its problems and say they did nothing', async () => {
  const broken = writeTempFile('broken.conf', 'delay = 300\n');
  try {
    for (const args of [['greylist', 'list'], ['check', '--client-address', '192.0.2.44', ...envelope], ['rbl', '192.0.2.44']]) {
      const r = await cli(...args, '--config', broken.file);
      assert.is(r.code, 2, args.join(' '));
      assert.match(r.stderr, /broken\.conf:1: expected "key: value", got "delay = 300"/, args.join(' '));
      assert.match(r.stderr, /1 problem\(s\) in the configuration; the command did nothing/, args.join(' '));
      assert.not.match(r.stderr, /not started/, `${args.join(' ')}: nothing was to be started`);
    }
  } finally {
    removeTempDir(broken.dir);
  }
});

s('greylist purge --older-than: a shorter age than max-age (records seen within it stay), a longer one is max-age; a bad one exits 2', async () => {
  const r = await cli('greylist', 'purge', '--older-than', '1h');
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^purged 0 triplets, 0 clients \(0 corrupt records\) unseen for 1h, or never passed and unseen for 2d$/m, r.stdout);
  assert.match((await cli('greylist', 'stats')).stdout, /clients 2/, 'the clients whitelisted just now stay');
  const days = await cli('greylist', 'purge');
  assert.match(days.stdout, /unseen for 35d/, 'max-age by default');
  // Longer than max-age: max-age still applies (the option only ever removes more).
  assert.match((await cli('greylist', 'purge', '--older-than', '60d')).stdout, /unseen for 35d/);
  for (const bad of ['30s', 'soon', '-5d']) {
    const b = await cli('greylist', 'purge', '--older-than', bad);
    assert.is(b.code, 2, bad);
    assert.match(b.stderr, /--older-than/);
  }
});

s('no store where the daemon keeps none: every command fails (exit 2) naming the path, and creates nothing', async () => {
  if (existsSync(DEFAULT_CONFIG_FILE)) {
    console.log(`  SKIP the default-path case: ${DEFAULT_CONFIG_FILE} exists on this host and would be read`);
    return;
  }
  const empty = mkdtempSync(join(hints.dir, 'cwd-'));
  try {
    for (const args of [['greylist', 'list'], ['greylist', 'clients'], ['greylist', 'stats'], ['greylist', 'purge'], ['greylist', 'whitelist', '192.0.2.55'], ['greylist', 'delete', '192.0.2/a@b.example/c@d.example'], ['check', '--client-address', '192.0.2.44', ...envelope]]) {
      const r = await cliIn(empty, ...args);
      assert.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.is(r.stdout, '', args.join(' '));
      assert.match(r.stderr, `no greylist store at ${join(empty, 'data', 'greylist')}`, args.join(' '));
      assert.match(r.stderr, /--data-dir DIR/);
      assert.equal(readdirSync(empty), [], `${args.join(' ')} created ${readdirSync(empty).join(', ')}`);
    }
    const status = await cliIn(empty, 'replication', 'status');
    assert.is(status.code, 0, 'no daemon, no status file, no replication configured');
    assert.match(status.stdout, /replication is not configured/);
    assert.equal(readdirSync(empty), [], 'replication status created nothing');
    const elsewhere = await cliIn(empty, 'greylist', 'whitelist', '192.0.2.55', '--data-dir', join(empty, 'nowhere'));
    assert.is(elsewhere.code, 2);
    assert.match(elsewhere.stderr, `no greylist store at ${join(empty, 'nowhere', 'greylist')}`);
    assert.match(elsewhere.stderr, 'came from --data-dir');
    assert.not.ok(existsSync(join(empty, 'nowhere')));
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

s('a damaged store: exit 1 with the store\'s own advice, not a hint to look elsewhere; check answers failing open', async () => {
  const dataDir = mkdtempSync(join(hints.dir, 'damaged-'));
  const store = await LmdbGreylistStore.open({ dataDir, clock: systemClock, logger: createSilentLogger() });
  await store.close();
  const file = join(dataDir, 'greylist', 'data.mdb');
  const bytes = readFileSync(file);
  bytes.fill(0x5a, 0, 8192); // both meta pages
  writeFileSync(file, bytes);
  const r = await cliIn(undefined, 'greylist', 'list', '--data-dir', dataDir);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, 'is not a usable LMDB data file');
  assert.match(r.stderr, 'restore it or move it away');
  assert.not.match(r.stderr, '--data-dir DIR');
  // check answers as the daemon does on such a store: greylisting skipped (fail open), so the new
  // triplet is accepted: exit 0, not the 1 of a reject it used to give.
  const c = await cliIn(undefined, 'check', '--client-address', '192.0.2.47', ...envelope, '--data-dir', dataDir);
  assert.is(c.code, 0, c.stderr);
  assert.match(c.stdout, /^action=DUNNO/m);
  assert.match(c.stderr, 'is not a usable LMDB data file');
  assert.match(c.stderr, 'the daemon fails open on it');
});

s('greylist list says on stderr when it stopped at --limit, and refuses a limit below 1', async () => {
  const dataDir = mkdtempSync(join(hints.dir, 'many-'));
  const store = await LmdbGreylistStore.open({ dataDir, clock: systemClock, logger: createSilentLogger() });
  const now = systemClock.nowMs();
  for (let i = 0; i < 123; i++) {
    const key = `192.0.2/s${String(i).padStart(3, '0')}@a.example/r@b.example`;
    await store.transact(key, '192.0.2.1', () => ({ update: { triplet: { firstSeenMs: now, lastSeenMs: now, passedAtMs: 0, passes: {} } }, result: null }));
  }
  await store.close();
  const list = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => cliIn(undefined, 'greylist', 'list', '--data-dir', dataDir, ...args);
  const first = await list();
  assert.is(first.code, 0, first.stderr);
  assert.is(first.stdout.trim().split('\n').length, 100);
  assert.match(first.stderr, /listed the first 100 triplets, and there are more; --limit N lists more/);
  const all = await list('--limit', '200');
  assert.is(all.stdout.trim().split('\n').length, 123);
  assert.is(all.stderr, '');
  const exact = await list('--limit', '123');
  assert.is(exact.stdout.trim().split('\n').length, 123);
  assert.is(exact.stderr, '', 'nothing was left out');
  const prefixed = await list('--prefix', '192.0.2/s1', '--limit', '5');
  assert.is(prefixed.stdout.trim().split('\n').length, 5);
  assert.match(prefixed.stderr, /first 5 triplets matching --prefix 192\.0\.2\/s1, and there are more/);
  for (const bad of ['0', '-1', '2.5', 'abc']) {
    const r = await list('--limit', bad);
    assert.is(r.code, 2, `--limit ${bad}`);
    assert.is(r.stdout, '', `--limit ${bad}`);
    assert.match(r.stderr, '--limit must be a whole number of 1 or more', `--limit ${bad}`);
  }
});

s('greylist delete: the triplet leaves the listing (its tombstone stays for the peers); again: exit 1', async () => {
  const dataDir = mkdtempSync(join(hints.dir, 'del-'));
  const store = await LmdbGreylistStore.open({ dataDir, clock: systemClock, logger: createSilentLogger() });
  const now = systemClock.nowMs();
  for (const key of ['192.0.2/a@a.example/r@b.example', '192.0.2/b@a.example/r@b.example', '192.0.2/c@a.example/r@b.example']) {
    await store.transact(key, '192.0.2.1', () => ({ update: { triplet: { firstSeenMs: now, lastSeenMs: now, passedAtMs: 0, passes: {} } }, result: null }));
  }
  await store.close();
  const run = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => cliIn(undefined, 'greylist', ...args, '--data-dir', dataDir);
  const del = await run('delete', '192.0.2/b@a.example/r@b.example');
  assert.is(del.code, 0, del.stderr);
  assert.is(del.stdout, 'deleted\n');
  const keys = (await run('list')).stdout.trim().split('\n').map((l) => l.split('\t')[0]);
  assert.equal(keys, ['192.0.2/a@a.example/r@b.example', '192.0.2/c@a.example/r@b.example']);
  const paged = await run('list', '--limit', '1');
  assert.match(paged.stdout, /^192\.0\.2\/a@/);
  const again = await run('delete', '192.0.2/b@a.example/r@b.example');
  assert.is(again.code, 1);
  assert.match(again.stdout, /^no such triplet; 'mxsentry greylist list --prefix CLIENT-NETWORK' shows the stored keys$/m);
  // A key as a mail log has it (the client's address, mixed case, a tab copied from list's output)
  // finds the key the daemon built from those parts.
  const store2 = await LmdbGreylistStore.open({ dataDir, clock: systemClock, logger: createSilentLogger() });
  const built = '198.51.100.0/d@a.example/r@b.example';
  await store2.transact(built, '198.51.100.7', () => ({ update: { triplet: { firstSeenMs: now, lastSeenMs: now, passedAtMs: 0, passes: {} } }, result: null }));
  await store2.close();
  const fromLog = await run('delete', '198.51.100.7/D@A.example/r@B.Example\t');
  assert.is(fromLog.code, 0, fromLog.stderr + fromLog.stdout);
  assert.is(fromLog.stdout, `deleted (stored as ${built})\n`);
  const missing = await run('delete', '198.51.100.7/nobody@a.example/r@b.example');
  assert.is(missing.code, 1);
  assert.match(missing.stdout, /^no such triplet \(looked for 198\.51\.100\.7\/nobody@a\.example\/r@b\.example and 198\.51\.100\.0\/nobody@a\.example\/r@b\.example\)/);
  // The tombstone is counted (it is a record the peers need), and the count says so.
  assert.match((await run('stats')).stdout, /^triplets 4 \(deleted ones included until they expire\)$/m);
});

s.run();
