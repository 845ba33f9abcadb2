// Tests for the replication settings: peer lines, the cluster key formats, the derived PSK, and the
// start-up errors that name the config key (missing key, a peer naming this node, a readable key file).
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig, parseEndpoint } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/util/errors.js';
import {
  clusterKeyOf,
  derivePsk,
  generateReplicationKey,
  greylistKeyingOf,
  KEY_CREDENTIAL,
  parsePeerSpec,
  parseReplicationKey,
  replicationProblemsOf,
  replicationSettingsOf,
} from '../../../src/store/replication/replication-settings.js';

const s = suite('store/replication/replication-settings');

const KEY = 'ab'.repeat(32);
const dirs: string[] = [];

function values(flags: Record<string, unknown>) {
  const r = loadConfig({ flags });
  assert.equal(r.errors, []);
  return r.values;
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.instance(err, ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

s.after.each(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

s('peer lines: addresses, host names, IPv6 in brackets', () => {
  assert.equal(parsePeerSpec('mx2=192.0.2.2:7410'), { name: 'mx2', host: '192.0.2.2', port: 7410, text: 'mx2=192.0.2.2:7410' });
  assert.equal(parsePeerSpec('mx-3.b=[2001:db8::3]:7410'), { name: 'mx-3.b', host: '2001:db8::3', port: 7410, text: 'mx-3.b=[2001:db8::3]:7410' });
  assert.is(parsePeerSpec('backup=mx2.example.org:7410').host, 'mx2.example.org');
  for (const bad of ['mx2', 'mx2=192.0.2.2', '=1.2.3.4:5', 'mx 2=1.2.3.4:5', 'mx2=1.2.3.4:0', 'mx2=1.2.3.4:70000', 'mx2=[1.2.3.4]:5', 'mx2=bad_host!:5']) {
    assert.throws(() => parsePeerSpec(bad), undefined, bad);
  }
  // A mistyped address is not taken for a host name: a last label is never all digits.
  assert.throws(() => parsePeerSpec('mx2=999.1.1.1:7410'), /"999\.1\.1\.1" is neither an IP address nor a host name/);
  assert.throws(() => parsePeerSpec('mx2=10.1.1:7410'), /neither an IP address nor a host name/);
  assert.is(parsePeerSpec('mx2=mx2.example.org.:7410').host, 'mx2.example.org.');
  assert.is(parsePeerSpec('mx2=0mx.example:7410').host, '0mx.example');
});

s('peer lines: two with one address, or one pointing at this node\'s own listener, are refused at their line index', () => {
  const base = { 'node-name': 'mx1', 'replication-key': 'ab'.repeat(32) };
  const twice = replicationProblemsOf({ ...base, 'replication-listen': parseEndpoint('127.0.0.1:7411'), peer: ['mx2=127.0.0.1:7413', 'mx3=127.0.0.1:7413'] });
  assert.equal(twice.map((e) => [e.key, e.index]), [['peer', 1]]);
  assert.match(twice[0]!.message, /"mx3=127\.0\.0\.1:7413" has the address of peer mx2/);
  const own = replicationProblemsOf({ ...base, 'replication-listen': parseEndpoint('127.0.0.1:7411'), peer: ['mx2=127.0.0.1:7413', 'mx4=127.0.0.1:7411'] });
  assert.equal(own.map((e) => e.index), [1]);
  assert.match(own[0]!.message, /is this node's own replication-listen \(127\.0\.0\.1:7411\)/);
  // Under a wildcard listener, an address of this host on its port is this node too.
  const wildcard = replicationProblemsOf({ ...base, 'replication-listen': parseEndpoint('0.0.0.0:7411'), peer: ['mx4=127.0.0.1:7411'] });
  assert.match(wildcard[0]?.message ?? '', /own replication-listen \(0\.0\.0\.0:7411\)/);
  // Other ports, or the same port on another host, are peers.
  assert.equal(replicationProblemsOf({ ...base, 'replication-listen': parseEndpoint('127.0.0.1:7411'), peer: ['mx2=127.0.0.1:7412', 'mx3=192.0.2.3:7411'] }), []);
});

s('cluster keys: 64 hex digits or base64 of 32 bytes; anything else is refused', () => {
  const hex = generateReplicationKey();
  assert.match(hex, /^[0-9a-f]{64}$/);
  assert.is(parseReplicationKey(hex).length, 32);
  assert.equal(parseReplicationKey(Buffer.alloc(32, 9).toString('base64')), Buffer.alloc(32, 9));
  for (const bad of ['', 'abc', 'g'.repeat(64), KEY.slice(2), Buffer.alloc(16).toString('base64')]) assert.throws(() => parseReplicationKey(bad), undefined, bad);
  assert.is.not(generateReplicationKey(), hex);
});

s('the PSK is derived, fixed for a key and different per key', () => {
  const a = derivePsk(parseReplicationKey(KEY));
  assert.is(a.length, 32);
  assert.equal(derivePsk(parseReplicationKey(KEY)), a);
  assert.not.equal(derivePsk(parseReplicationKey('cd'.repeat(32))), a);
  assert.not.equal(a, parseReplicationKey(KEY));
});

s('replication is off without peers and listener', () => {
  assert.is(replicationSettingsOf(values({})), undefined);
});

s('a full configuration', () => {
  const r = replicationSettingsOf(
    values({ 'node-name': 'mx1', 'replication-listen': '127.0.0.1:7410', peer: ['mx2=127.0.0.2:7410', 'mx3=127.0.0.3:7410'], 'replication-key': KEY, 'replication-digest-interval': '2m', 'replication-timeout': '5' }),
  )!;
  assert.is(r.nodeName, 'mx1');
  assert.is(r.listen?.text, '127.0.0.1:7410');
  assert.equal(r.peers.map((p) => p.name), ['mx2', 'mx3']);
  assert.is(r.digestIntervalMs, 120_000);
  assert.is(r.timeoutMs, 5000);
  assert.is(r.logMaxEntries, 1_000_000);
  assert.equal(r.psk, derivePsk(parseReplicationKey(KEY)));
});

s('start-up errors name the key', () => {
  assert.is(configError(() => replicationSettingsOf(values({ peer: ['mx2=127.0.0.2:1'] }))).key, 'replication-key');
  assert.is(configError(() => replicationSettingsOf(values({ peer: ['mx2=127.0.0.2:1'], 'replication-key': 'short' }))).key, 'replication-key');
  assert.is(configError(() => replicationSettingsOf(values({ peer: ['nonsense'], 'replication-key': KEY }))).key, 'peer');
  assert.is(configError(() => replicationSettingsOf(values({ 'node-name': 'mx1', peer: ['mx1=127.0.0.2:1'], 'replication-key': KEY }))).key, 'peer');
  assert.is(configError(() => replicationSettingsOf(values({ peer: ['mx2=127.0.0.2:1', 'mx2=127.0.0.3:1'], 'replication-key': KEY }))).key, 'peer');
  assert.is(configError(() => replicationSettingsOf(values({ 'node-name': 'bad name', peer: ['mx2=127.0.0.2:1'], 'replication-key': KEY }))).key, 'node-name');
});

s('replicationProblemsOf lists every problem, each peer line with its index', () => {
  const problems = replicationProblemsOf(values({ 'node-name': 'mx 1', peer: ['mx2=127.0.0.2:1', 'mx3', 'mx2=127.0.0.3:1'], 'replication-key': 'abc' }));
  assert.equal(
    problems.map((p) => [p.key, p.index, p.message.replace(/:.*/s, '')]),
    [['node-name', undefined, 'node-name'], ['peer', 1, 'peer'], ['peer', 2, 'peer'], ['replication-key', undefined, 'replication-key']],
  );
  assert.match(problems[2]!.message, /peer name "mx2" is listed twice/);
  // replicationSettingsOf still refuses with the first of them.
  assert.is(configError(() => replicationSettingsOf(values({ 'node-name': 'mx 1', peer: ['mx3'], 'replication-key': 'abc' }))).key, 'node-name');
  assert.equal(replicationProblemsOf(values({})), []);
  assert.equal(replicationProblemsOf(values({ peer: ['mx2=127.0.0.2:1'], 'replication-key': KEY })), []);
});

s('a key file is read, and refused while others can read it', () => {
  const d = mkdtempSync(join(tmpdir(), 'mxsentry-repl-'));
  dirs.push(d);
  const file = join(d, 'key');
  writeFileSync(file, `${KEY}\n`, { mode: 0o600 });
  const ok = replicationSettingsOf(values({ peer: ['mx2=127.0.0.2:1'], 'replication-key-file': file }))!;
  assert.equal(ok.psk, derivePsk(parseReplicationKey(KEY)));
  chmodSync(file, 0o644);
  const err = configError(() => replicationSettingsOf(values({ peer: ['mx2=127.0.0.2:1'], 'replication-key-file': file })));
  assert.is(err.key, 'replication-key-file');
  assert.match(err.message, /chmod 600/);
  assert.is(configError(() => replicationSettingsOf(values({ peer: ['mx2=127.0.0.2:1'], 'replication-key-file': file, 'replication-key': KEY }))).key, 'replication-key');
});

s('the systemd credential replication-key stands for replication-key-file, whatever its mode', () => {
  const d = mkdtempSync(join(tmpdir(), 'mxsentry-repl-'));
  dirs.push(d);
  const credentials = join(d, 'credentials');
  mkdirSync(credentials);
  // systemd's copy: readable by the service (here through the group bits an ACL mask shows).
  writeFileSync(join(credentials, KEY_CREDENTIAL), `${KEY}\n`, { mode: 0o440 });
  const env = { CREDENTIALS_DIRECTORY: credentials };
  const unreadable = join(d, 'root-only-cluster.key');
  assert.equal(clusterKeyOf(values({ peer: ['mx2=127.0.0.2:1'], 'replication-key-file': unreadable }), env), parseReplicationKey(KEY));
  assert.equal(clusterKeyOf(values({ peer: ['mx2=127.0.0.2:1'] }), env), parseReplicationKey(KEY), 'the credential alone is enough');
  assert.is(configError(() => clusterKeyOf(values({ peer: ['mx2=127.0.0.2:1'], 'replication-key': KEY }), env)).key, 'replication-key');
  // Without the credential (outside systemd, or no LoadCredential=) the file is what counts.
  const missing = configError(() => clusterKeyOf(values({ peer: ['mx2=127.0.0.2:1'], 'replication-key-file': unreadable }), { CREDENTIALS_DIRECTORY: join(d, 'none') }));
  assert.is(missing.key, 'replication-key-file');
  assert.match(missing.message, unreadable);
  writeFileSync(join(credentials, KEY_CREDENTIAL), 'short');
  const bad = configError(() => clusterKeyOf(values({ peer: ['mx2=127.0.0.2:1'] }), env));
  assert.is(bad.key, 'replication-key-file');
  assert.match(bad.message, 'systemd credential');
});

s('the keying line names the settings that shape triplet keys and expiry, and changes with each', () => {
  const base = greylistKeyingOf(loadConfig({}).values);
  assert.is(base, 'lookup-by-host=no ipv4cidr=24 ipv6cidr=64 max-age=3024000s retry-window=172800s');
  for (const flags of [{ 'lookup-by-host': true }, { ipv4cidr: 16 }, { ipv6cidr: 48 }, { 'max-age': '10' }, { 'retry-window': '12h' }]) {
    assert.is.not(greylistKeyingOf(loadConfig({ flags }).values), base, JSON.stringify(flags));
  }
  assert.is(greylistKeyingOf(loadConfig({ flags: { delay: 300 } }).values), base, 'the delay may differ: a retry is judged against the first sight, wherever it was');
});

s.run();
