// Tests for the replication CLI's output: `peer keygen` prints a fresh key and config lines the
// daemon accepts as they are, and `replication status` renders peers, lag and errors as a table.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DEFAULT_KEY_FILE, formatReplicationStatus, keygenText } from '../../src/cli/replication-commands.js';
import { loadConfig, parseConfigText } from '../../src/config/load.js';
import type { ReplicationStatus } from '../../src/store/replication/replication-status.js';
import { KEY_CREDENTIAL, replicationSettingsOf } from '../../src/store/replication/replication-settings.js';
import { MXSENTRY_BIN } from '../helpers/daemon.js';

const s = suite('cli/replication-commands');

s('keygen output pasted as a config file is a valid replication configuration, the key in a root-only file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-keygen-'));
  try {
    const keyFile = join(dir, 'cluster.key');
    writeFileSync(keyFile, `${'ab'.repeat(32)}\n`, { mode: 0o600 });
    const text = keygenText('ab'.repeat(32), { name: 'mx1', address: '192.0.2.1', port: 7410, keyFile });
    const lines = parseConfigText(text, 'pasted', []);
    assert.equal(lines.map((l) => l.key), ['replication-key-file', 'node-name', 'replication-listen', 'peer']);
    const flags: Record<string, unknown> = {};
    for (const l of lines) flags[l.key] = l.key === 'peer' ? ['mx2=192.0.2.2:7410'] : l.value;
    const loaded = loadConfig({ flags });
    assert.equal(loaded.errors, []);
    const settings = replicationSettingsOf(loaded.values)!;
    assert.is(settings.nodeName, 'mx1');
    assert.is(settings.listen?.text, '192.0.2.1:7410');
    assert.match(text, /^peer: mx1=192\.0\.2\.1:7410$/m);
    assert.not.match(text, /abab/, 'the key stays in its file');
    assert.match(text, `LoadCredential=${KEY_CREDENTIAL}:${keyFile}`);
    assert.not.match(text, /0600.*config|config.*0600/i, 'no advice to make the config root-only');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const printed = keygenText('cd'.repeat(32), { name: 'mx1', address: '2001:db8::1', port: 7410 });
  assert.match(printed, `(umask 077; echo ${'cd'.repeat(32)} > ${DEFAULT_KEY_FILE})`);
  assert.match(printed, `replication-key-file: ${DEFAULT_KEY_FILE}`);
  assert.match(printed, `LoadCredential=${KEY_CREDENTIAL}:${DEFAULT_KEY_FILE}`);
  assert.not.match(printed, /^replication-key:/m, 'never the key in mxsentry.conf');
  assert.match(printed, /^peer: mx1=\[2001:db8::1\]:7410$/m);
});

s('keygen without --address: the admin fills in the address; no listener on every interface by default', () => {
  const text = keygenText('ab'.repeat(32), { name: 'mx1', address: undefined, port: 7410 });
  assert.match(text, /^replication-listen: THIS-HOST-ADDRESS:7410$/m);
  assert.match(text, /^peer: mx1=THIS-HOST-ADDRESS:7410$/m);
  assert.match(text, /^# THIS-HOST-ADDRESS: the address the other nodes reach this node at/m);
  assert.not.match(text, /^replication-listen: 0\.0\.0\.0/m);
  // Pasted unedited, the line is refused: nothing listens on an address nobody chose.
  assert.ok(loadConfig({ flags: { 'replication-listen': 'THIS-HOST-ADDRESS:7410' } }).errors.length > 0);
});

s('keygen --address with a host name: the peer line names the host, replication-listen an address the daemon accepts', () => {
  const text = keygenText('ef'.repeat(32), { name: 'mx1', address: 'mx1.example.org', port: 7410 });
  assert.match(text, /^peer: mx1=mx1\.example\.org:7410$/m);
  const lines = parseConfigText(text, 'pasted', []);
  const flags: Record<string, unknown> = { 'replication-key': 'ef'.repeat(32) };
  // This node lists another; the key goes in as a value (no key file here).
  // (On port 7411: under the wildcard listener on 7410, an address this test machine happens to hold
  // would be this node itself.)
  for (const l of lines) if (l.key !== 'replication-key-file') flags[l.key] = l.key === 'peer' ? ['mx2=192.0.2.2:7411'] : l.value;
  const loaded = loadConfig({ flags });
  assert.equal(loaded.errors.map((e) => e.message), []);
  assert.is(replicationSettingsOf(loaded.values)!.listen?.text, '0.0.0.0:7410');
  // The peer line itself is what the other nodes paste: it parses as it is.
  assert.equal(loadConfig({ flags: { ...flags, 'node-name': 'mx2', peer: ['mx1=mx1.example.org:7410'] } }).errors.map((e) => e.message), []);
});

s('status is a table with each peer, connected or not, its lag and last error', () => {
  const now = 1_800_000_000_000;
  const status: ReplicationStatus = {
    enabled: true,
    nodeName: 'mx1',
    nodeId: 'aaaa',
    listen: '0.0.0.0:7410',
    lastSeq: 120,
    refusedConnections: 2,
    lastRefused: { text: 'mx3 from 192.0.2.3: STORE_ERR_REPL_DUPLICATE_NAME: another node is already connected as "mx3"', atMs: now - 7000 },
    clampedRecords: 0,
    atMs: now,
    peers: [
      { name: 'mx2', address: '192.0.2.2:7410', nodeId: 'bbbb', connected: true, inbound: true, ackedSeq: 120, lagRecords: 0, lagSec: 0, lastError: null, lastErrorAtMs: null, connectedSinceMs: now - 5000, clockOffsetMs: 1200, lastDigestAtMs: now - 30_000, lastDigestDiffBuckets: 0, repairedRecords: 0, sentEntries: 9, receivedEntries: 4 },
      { name: 'mx3', address: '192.0.2.3:7410', nodeId: null, connected: false, inbound: false, ackedSeq: null, lagRecords: null, lagSec: null, lastError: 'STORE_ERR_REPL_AUTH: wrong key', lastErrorAtMs: now - 3000, connectedSinceMs: null, clockOffsetMs: null, lastDigestAtMs: null, lastDigestDiffBuckets: null, repairedRecords: 0, sentEntries: 0, receivedEntries: 0 },
    ],
  };
  const out = formatReplicationStatus(status, { kind: 'daemon' }, now);
  assert.match(out, /^node mx1 \(store id aaaa\), listening 0\.0\.0\.0:7410, log at sequence 120$/m);
  assert.match(out, /^mx2\s+192\.0\.2\.2:7410\s+yes\s+yes\s+0\s+0\.0\s+30s ago\s+-$/m);
  assert.match(out, /^mx3\s+192\.0\.2\.3:7410\s+no\s+no\s+\?\s+\?\s+-\s+STORE_ERR_REPL_AUTH: wrong key \(3s ago\)$/m);
  assert.match(out, /^refused inbound connections since start: 2 \(the last 7s ago: mx3 from 192\.0\.2\.3: STORE_ERR_REPL_DUPLICATE_NAME: another node is already connected as "mx3"\)$/m);
  assert.not.match(out, /dropped before authentication/, 'no line for drops when there were none');
  const withChecks = formatReplicationStatus(
    { ...status, refusedConnections: 12, droppedBeforeAuth: 10, lastDropped: { text: 'no identity from 192.0.2.9: STORE_ERR_REPL_PROTOCOL: socket hang up', atMs: now - 2000 } },
    { kind: 'daemon' },
    now,
  );
  assert.match(withChecks, /^refused inbound connections since start: 2 \(the last 7s ago: mx3 from 192\.0\.2\.3: STORE_ERR_REPL_DUPLICATE_NAME/m, 'port checks do not hide the last refused node');
  const onlyChecks = formatReplicationStatus({ ...status, refusedConnections: 4, droppedBeforeAuth: 4, lastRefused: null }, { kind: 'daemon' }, now);
  assert.not.match(onlyChecks, /^refused inbound connections/m, 'no refused line of 0 when every refusal was a port check');
  assert.match(onlyChecks, /^inbound connections dropped before authentication \(not TLS-PSK: port checks, scanners\): 4$/m);
  assert.match(withChecks, /^inbound connections dropped before authentication \(not TLS-PSK: port checks, scanners\): 10 \(the last 2s ago: no identity from 192\.0\.2\.9: STORE_ERR_REPL_PROTOCOL: socket hang up\)$/m);
  assert.not.match(out, /clock/, 'a peer 1.2 s off is no warning');
  assert.match(formatReplicationStatus({ ...status, storeProblem: 'STORE_ERR_OPEN: damaged' }, { kind: 'daemon' }, now), /^WARNING: this node's greylist store is not open \(STORE_ERR_OPEN: damaged\): nothing is replicated until it is$/m);
  // An open store that fails (a full disk): said here too, not only at the peer that cannot push to it.
  assert.match(
    formatReplicationStatus({ ...status, storeFailure: 'STORE_ERR_FULL: No space left on device' }, { kind: 'daemon' }, now),
    /^WARNING: this node's greylist store is failing \(STORE_ERR_FULL: No space left on device\): peers' records are not merged until it recovers$/m,
  );
  const skewed = formatReplicationStatus({ ...status, peers: [{ ...status.peers[0]!, clockOffsetMs: -3_600_400 }] }, { kind: 'daemon' }, now);
  assert.match(skewed, /^WARNING: the clock of mx2 is 3600 s behind this node's: greylisting across nodes needs synchronised clocks \(run NTP on every node\)$/m);
  assert.match(formatReplicationStatus(status, { kind: 'file', writtenAtMs: now - 60_000, pid: 42, running: false }, now), /pid 42 60s ago/);
  assert.match(formatReplicationStatus({ ...status, enabled: false }, { kind: 'daemon' }, now), /not configured/);
  // An error from before the current connection (the peer was not up yet at start) is marked so.
  const healed = { ...status.peers[0]!, lastError: 'STORE_ERR_REPL_CONNECTION: ECONNREFUSED', lastErrorAtMs: now - 34_000, connectedSinceMs: now - 30_000 };
  const out2 = formatReplicationStatus({ ...status, peers: [healed] }, { kind: 'daemon' }, now);
  assert.match(out2, /^mx2\s+.*\s+- \(before this connection: STORE_ERR_REPL_CONNECTION: ECONNREFUSED, 34s ago\)$/m);
  // The daemon stopped (the CLI reads its file and marks nothing connected): the error had been healed.
  const stopped = formatReplicationStatus({ ...status, peers: [{ ...healed, connected: false, inbound: false }] }, { kind: 'file', writtenAtMs: now - 10_000, pid: 42, running: false }, now);
  assert.match(stopped, /^mx2\s+.*\s+- \(before its last connection: STORE_ERR_REPL_CONNECTION: ECONNREFUSED, 34s ago\)$/m);
  // After the connection came up, an error is current.
  const fresh = { ...healed, lastErrorAtMs: now - 1000 };
  assert.match(formatReplicationStatus({ ...status, peers: [fresh] }, { kind: 'daemon' }, now), /ECONNREFUSED \(1s ago\)$/m);
});

s('keygen names the bad flag itself: a port, a name, a mistyped address (exit 2)', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['--port', 'abc'], /^mxsentry: --port must be a port number 1-65535, got "abc"\n$/],
    [['--port', '70000'], /^mxsentry: --port must be a port number 1-65535, got "70000"\n$/],
    [['--name', 'mx=1', '--address', '127.0.0.1'], /^mxsentry: --name "mx=1" must be 1-64 characters/],
    [['--address', '999.1.1.1'], /^mxsentry: "999\.1\.1\.1" is neither an IP address nor a host name\n$/],
  ];
  for (const [args, message] of cases) {
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
      execFile(process.execPath, [MXSENTRY_BIN, 'peer', 'keygen', ...args], { timeout: 15_000 }, (err, stdout, stderr) => {
        done({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr });
      });
    });
    assert.is(r.code, 2, args.join(' '));
    assert.match(r.stderr, message, args.join(' '));
    assert.is(r.stdout, '', 'no key printed');
  }
});

s.run();
