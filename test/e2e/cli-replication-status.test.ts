// `mxsentry replication status` with no daemon running, from the status file it left and the store:
// a file from a run without replication must not hide the replication the configuration now sets up;
// nor must a running daemon that started without it (a stand-in answers on its control socket). A
// configuration file broken after the daemon started still reaches the daemon, unless the broken
// lines may move its control socket.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { LmdbGreylistStore } from '../../src/store/lmdb-greylist-store.js';
import { generateReplicationKey } from '../../src/store/replication/replication-settings.js';
import { writeStatusFile } from '../../src/store/replication/replication-status.js';
import { systemClock } from '../../src/util/clock.js';
import { createSilentLogger } from '../../src/util/logger.js';
import { MXSENTRY_BIN } from '../helpers/daemon.js';

const run = promisify(execFile);
const s = suite('e2e: mxsentry replication status without a replicating daemon');

async function status(dataDir: string, extra: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [MXSENTRY_BIN, 'replication', 'status', '--data-dir', dataDir, ...extra], { timeout: 15_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A new data folder holding an empty greylist store, as a daemon's first start leaves it. */
async function dataDirWithStore(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-rstatus-'));
  const store = await LmdbGreylistStore.open({ dataDir: dir, clock: systemClock, logger: createSilentLogger() });
  await store.close();
  return dir;
}

s('no daemon and no status file: exit 0 when the configuration sets up no replication, 1 when it does', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-rstatus-'));
  try {
    const none = await status(join(dir, 'data'), []);
    assert.is(none.code, 0, none.stderr);
    assert.is(none.stdout, 'replication is not configured (no peer, no replication-listen)\n');
    assert.match(none.stderr, /looked in no configuration file \(defaults and flags only\), and found no daemon answering on .*control\.sock/);
    const keyFile = join(dir, 'cluster.key');
    writeFileSync(keyFile, `${generateReplicationKey()}\n`, { mode: 0o600 });
    const some = await status(join(dir, 'data'), ['--peer', 'mx2=127.0.0.1:10999', '--replication-key-file', keyFile]);
    assert.is(some.code, 1, some.stdout);
    assert.match(some.stderr, /no daemon is running .* and it never wrote /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s('a status file from a run without replication: the configured peers are shown, none connected (exit 1)', async () => {
  const dir = await dataDirWithStore();
  try {
    const now = Date.now();
    await writeStatusFile(join(dir, 'replication-status.json'), { enabled: false, nodeName: null, nodeId: null, listen: null, lastSeq: 0, peers: [], refusedConnections: 0, clampedRecords: 0, atMs: now }, now);
    writtenByGonePid(join(dir, 'replication-status.json'));
    const without = await status(dir, []);
    assert.is(without.code, 0, without.stderr);
    assert.match(without.stdout, /not configured/);
    const repl = ['--node-name', 'n1', '--replication-listen', '127.0.0.1:28410', '--replication-key', generateReplicationKey(), '--peer', 'n2=127.0.0.1:28411'];
    const withRepl = await status(dir, repl);
    assert.is(withRepl.code, 1, withRepl.stderr);
    assert.match(withRepl.stderr, /last ran without replication/);
    assert.match(withRepl.stdout, /^node n1 .*listening 127\.0\.0\.1:28410/m);
    assert.match(withRepl.stdout, /^n2\s+127\.0\.0\.1:28411\s+no\s+no/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Makes a status file look written by a process that no longer exists (pids never reach 2^31 - 1). */
function writtenByGonePid(file: string): void {
  writeFileSync(file, JSON.stringify({ ...(JSON.parse(readFileSync(file, 'utf8')) as object), pid: 2 ** 31 - 1 }));
}

s('a daemon that runs but answers on another control socket is said to run, with its last written state (exit 1)', async () => {
  const dir = await dataDirWithStore();
  try {
    const now = Date.now();
    // Written by this (running) process a moment ago, as the daemon rewrites it every few seconds.
    const peer = { name: 'n2', address: '127.0.0.1:28411', nodeId: null, connected: true, inbound: true, ackedSeq: null, lagRecords: null, lagSec: null, lastError: null, lastErrorAtMs: null, connectedSinceMs: now - 5000, clockOffsetMs: 0, lastDigestAtMs: null, lastDigestDiffBuckets: null, repairedRecords: 0, sentEntries: 0, receivedEntries: 0 };
    await writeStatusFile(join(dir, 'replication-status.json'), { enabled: true, nodeName: 'n1', nodeId: null, listen: '127.0.0.1:28410', lastSeq: 0, peers: [peer], refusedConnections: 0, clampedRecords: 0, atMs: now }, now);
    const r = await status(dir, ['--node-name', 'n1', '--replication-listen', '127.0.0.1:28410', '--replication-key', generateReplicationKey(), '--peer', 'n2=127.0.0.1:28411']);
    assert.is(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`the daemon \\(pid ${process.pid}\\) is running but does not answer on .*control\\.sock: its control socket is elsewhere`));
    assert.match(r.stdout, /NOTE: the daemon \(pid \d+\) runs but did not answer/);
    assert.match(r.stdout, /^n2\s+127\.0\.0\.1:28411\s+yes\s+yes/m);
    const json = await status(dir, ['--json', '--node-name', 'n1', '--replication-listen', '127.0.0.1:28410', '--replication-key', generateReplicationKey(), '--peer', 'n2=127.0.0.1:28411']);
    assert.is((JSON.parse(json.stdout) as { running: boolean }).running, true);
    // The running daemon started without replication, which the file now sets up: restart it.
    await writeStatusFile(join(dir, 'replication-status.json'), { enabled: false, nodeName: null, nodeId: null, listen: null, lastSeq: 0, peers: [], refusedConnections: 0, clampedRecords: 0, atMs: now }, now);
    const off = await status(dir, ['--node-name', 'n1', '--replication-listen', '127.0.0.1:28410', '--replication-key', generateReplicationKey(), '--peer', 'n2=127.0.0.1:28411']);
    assert.match(off.stderr, /the running daemon started without replication, .*restart mxsentry/);
    assert.not.match(off.stderr, /no daemon is running/);
    writtenByGonePid(join(dir, 'replication-status.json'));
    const gone = await status(dir, ['--node-name', 'n1', '--replication-listen', '127.0.0.1:28410', '--replication-key', generateReplicationKey(), '--peer', 'n2=127.0.0.1:28411']);
    assert.match(gone.stderr, /no daemon is running, and it last ran without replication/);
    assert.match(gone.stdout, /NOTE: no daemon answered/);
    assert.match(gone.stdout, /^n2\s+127\.0\.0\.1:28411\s+no\s+no/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s('a daemon that accepts on its control socket but never answers: its last saved status, with why (exit 1)', async () => {
  const dir = await dataDirWithStore();
  const empty = await dataDirWithStore();
  const sockets: net.Socket[] = [];
  const hang = (path: string): Promise<net.Server> =>
    new Promise((resolve) => {
      const server = net.createServer((socket) => void sockets.push(socket));
      server.listen(path, () => resolve(server));
    });
  const servers = [await hang(join(dir, 'control.sock')), await hang(join(empty, 'control.sock'))];
  try {
    const now = Date.now();
    const peer = { name: 'n2', address: '127.0.0.1:28411', nodeId: null, connected: true, inbound: true, ackedSeq: null, lagRecords: null, lagSec: null, lastError: null, lastErrorAtMs: null, connectedSinceMs: now - 5000, clockOffsetMs: 0, lastDigestAtMs: null, lastDigestDiffBuckets: null, repairedRecords: 0, sentEntries: 0, receivedEntries: 0 };
    await writeStatusFile(join(dir, 'replication-status.json'), { enabled: true, nodeName: 'n1', nodeId: null, listen: '127.0.0.1:28410', lastSeq: 0, peers: [peer], refusedConnections: 0, clampedRecords: 0, atMs: now }, now);
    const args = ['--node-name', 'n1', '--replication-listen', '127.0.0.1:28410', '--replication-key', generateReplicationKey(), '--peer', 'n2=127.0.0.1:28411'];
    // Both wait out the 10 s answer timeout at once.
    const [saved, never] = await Promise.all([status(dir, args), status(empty, args)]);
    assert.is(saved.code, 1, saved.stderr);
    assert.match(saved.stderr, /CONTROL_ERR_TIMEOUT: no answer from the daemon on .*control\.sock within 10000 ms: the daemon hangs or is overloaded; its status as it last saved it follows/);
    assert.match(saved.stdout, /^n2\s+127\.0\.0\.1:28411\s+yes\s+yes/m);
    assert.is(never.code, 1, never.stderr);
    assert.match(never.stderr, /hangs or is overloaded, and it never saved its status to /);
    assert.is(never.stdout, '');
  } finally {
    for (const socket of sockets) socket.destroy();
    for (const server of servers) server.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(empty, { recursive: true, force: true });
  }
});

s('replication keygen points at peer keygen (exit 2); a store that cannot be read shows lag as unknown', async () => {
  const keygen = await run(process.execPath, [MXSENTRY_BIN, 'replication', 'keygen']).then((r) => ({ code: 0, ...r }), (e: { code: number; stdout: string; stderr: string }) => e);
  assert.is(keygen.code, 2);
  assert.match(keygen.stderr, /made by `mxsentry peer keygen`/);
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-rstatus-'));
  try {
    const now = Date.now();
    const peer = { name: 'n2', address: '127.0.0.1:28411', nodeId: 'bbbb', connected: true, inbound: true, ackedSeq: 5, lagRecords: 0, lagSec: 0, lastError: null, lastErrorAtMs: null, connectedSinceMs: now - 5000, clockOffsetMs: 0, lastDigestAtMs: null, lastDigestDiffBuckets: null, repairedRecords: 0, sentEntries: 0, receivedEntries: 0 };
    await writeStatusFile(join(dir, 'replication-status.json'), { enabled: true, nodeName: 'n1', nodeId: 'aaaa', listen: '127.0.0.1:28410', lastSeq: 5, peers: [peer], refusedConnections: 0, clampedRecords: 0, atMs: now }, now);
    writtenByGonePid(join(dir, 'replication-status.json'));
    // No store in the folder: the lag cannot be read now, so it is not shown as the file's 0.
    const r = await status(dir, ['--node-name', 'n1', '--replication-listen', '127.0.0.1:28410', '--replication-key', generateReplicationKey(), '--peer', 'n2=127.0.0.1:28411']);
    assert.match(r.stderr, /cannot read the greylist store for lag/);
    assert.match(r.stdout, /^n2\s+127\.0\.0\.1:28411\s+no\s+no\s+\?\s+\?/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A control socket answering every request as a daemon running without replication does. */
async function daemonWithoutReplication(path: string): Promise<net.Server> {
  const server = net.createServer((socket) => {
    socket.once('data', () => socket.end(`${JSON.stringify({ ok: true, result: { configured: false, message: 'replication not configured' } })}\n`));
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return server;
}

s('a running daemon started without replication, whose configuration now sets it up: said so, exit 1', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-rstatus-'));
  const server = await daemonWithoutReplication(join(dir, 'control.sock'));
  try {
    const without = await status(dir, []);
    assert.is(without.code, 0, without.stderr);
    assert.match(without.stdout, /not configured on the running daemon/);
    const repl = ['--node-name', 'n1', '--replication-listen', '127.0.0.1:28410', '--replication-key', generateReplicationKey(), '--peer', 'n2=127.0.0.1:28411'];
    const withRepl = await status(dir, repl);
    assert.is(withRepl.code, 1, withRepl.stderr);
    assert.match(withRepl.stderr, /started without it: restart mxsentry/);
    assert.match(withRepl.stderr, /peer n2\b/);
    const json = await status(dir, [...repl, '--json']);
    assert.is(json.code, 1);
    assert.equal(JSON.parse(json.stdout), { enabled: false, configured: true });
    const broken = await status(dir, ['--peer', 'n2=127.0.0.1:28411']);
    assert.is(broken.code, 2, broken.stderr);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A control socket answering every request as a daemon replicating with one connected peer does. */
async function replicatingDaemon(path: string): Promise<net.Server> {
  const now = Date.now();
  const peer = { name: 'n2', address: '127.0.0.1:28411', nodeId: null, connected: true, inbound: true, ackedSeq: 0, lagRecords: 0, lagSec: 0, lastError: null, lastErrorAtMs: null, connectedSinceMs: now - 5000, clockOffsetMs: 0, lastDigestAtMs: null, lastDigestDiffBuckets: null, repairedRecords: 0, sentEntries: 0, receivedEntries: 0 };
  const status = { enabled: true, nodeName: 'n1', nodeId: 'aaaa', listen: '127.0.0.1:28410', lastSeq: 0, peers: [peer], refusedConnections: 0, clampedRecords: 0, atMs: now };
  const server = net.createServer((socket) => {
    socket.once('data', () => socket.end(`${JSON.stringify({ ok: true, result: { configured: true, status } })}\n`));
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return server;
}

s('a file broken after the daemon started (a key set twice): the daemon is still asked unless the socket may have moved', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-rstatus-'));
  const sock = join(dir, 'control.sock');
  const server = await replicatingDaemon(sock);
  const conf = join(dir, 'mx.conf');
  const statusOf = (extra: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    run(process.execPath, [MXSENTRY_BIN, 'replication', 'status', '--config', conf, ...extra], { timeout: 15_000 }).then((r) => ({ code: 0, ...r }), (e: { code: number; stdout: string; stderr: string }) => e);
  try {
    writeFileSync(conf, `data-dir: ${dir}\nlog-level: info\nlog-level: warn\n`);
    const r = await statusOf([]);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stderr, /config error: .*mx\.conf:3: "log-level" is set more than once/);
    assert.match(r.stderr, new RegExp(`asking the daemon on ${sock} all the same`));
    assert.match(r.stdout, /^n2\s+127\.0\.0\.1:28411\s+yes\s+yes/m);
    assert.is((JSON.parse((await statusOf(['--json'])).stdout) as { source: string }).source, 'daemon');
    // data-dir set twice may have moved the socket: not asked, and told how to name it.
    writeFileSync(conf, `data-dir: ${dir}\ndata-dir: ${join(dir, 'other')}\n`);
    const moved = await statusOf([]);
    assert.is(moved.code, 2, moved.stderr);
    assert.is(moved.stdout, '');
    assert.match(moved.stderr, /the daemon was not asked: its control socket depends on them .*--control-socket PATH/);
    const named = await statusOf(['--control-socket', sock]);
    assert.is(named.code, 0, named.stderr);
    assert.match(named.stdout, /^n2\s+127\.0\.0\.1:28411\s+yes\s+yes/m);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  }
  // No daemon: the status file and the store would come from the broken file's values: exit 2.
  const gone = mkdtempSync(join(tmpdir(), 'mxsentry-rstatus-'));
  try {
    writeFileSync(join(gone, 'mx.conf'), `data-dir: ${gone}\nlog-level: info\nlog-level: warn\n`);
    const r = await run(process.execPath, [MXSENTRY_BIN, 'replication', 'status', '--config', join(gone, 'mx.conf')], { timeout: 15_000 }).then((x) => ({ code: 0, ...x }), (e: { code: number; stdout: string; stderr: string }) => e);
    assert.is(r.code, 2, r.stderr);
    assert.match(r.stderr, /the command did nothing .*; asking the daemon on .*control\.sock: CONTROL_ERR_NOT_RUNNING/);
  } finally {
    rmSync(gone, { recursive: true, force: true });
  }
});

s.run();
