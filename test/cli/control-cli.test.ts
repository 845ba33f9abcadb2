// The CLI side of the control commands: exit codes per ControlError code, the socket path choice,
// the histogram quantile shown by `stats`, and the human stats text naming every part.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT_FAILED, EXIT_NOT_RUNNING, EXIT_PERMISSION, EXIT_USAGE, exitCodeOf, formatStats, histogramQuantile, resolveControlSocket } from '../../src/cli/control-cli.js';
import { ControlError } from '../../src/control/control-error.js';
import { Histogram } from '../../src/metrics/histogram.js';
import { collectStats } from '../../src/metrics/stats-snapshot.js';
import { fakeSources } from '../helpers/stats-sources.js';

const s = suite('cli/control-cli');

s('exit codes scripts can rely on', () => {
  assert.is(exitCodeOf(new ControlError('CONTROL_ERR_NOT_RUNNING', 'x')), EXIT_NOT_RUNNING);
  assert.is(exitCodeOf(new ControlError('CONTROL_ERR_PERMISSION', 'x')), EXIT_PERMISSION);
  assert.is(exitCodeOf(new ControlError('CONTROL_ERR_BAD_REQUEST', 'x')), EXIT_USAGE);
  assert.is(exitCodeOf(new ControlError('CONTROL_ERR_FAILED', 'x')), EXIT_FAILED);
  assert.is(exitCodeOf(new Error('x')), EXIT_FAILED);
  assert.equal([EXIT_FAILED, EXIT_USAGE, EXIT_NOT_RUNNING, EXIT_PERMISSION], [1, 2, 3, 4]);
});

s('--control-socket wins over everything', () => {
  assert.is(resolveControlSocket({ 'control-socket': '/x/c.sock', config: '/nonexistent.conf' }), '/x/c.sock');
});

s('--config naming the unit\'s file finds the unit\'s socket (its ExecStart overrides the file); another file its own', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-sock-'));
  try {
    const unitConf = join(dir, 'mxsentry.conf');
    const unitSock = join(dir, 'control.sock');
    writeFileSync(unitConf, `data-dir: ${join(dir, 'data')}\n`);
    const unit = { configFile: unitConf, controlSocket: unitSock };
    // No unit socket yet: the file's own (data-dir/control.sock).
    assert.is(resolveControlSocket({ config: unitConf }, unit), join(dir, 'data', 'control.sock'));
    writeFileSync(unitSock, '');
    assert.is(resolveControlSocket({ config: unitConf }, unit), unitSock);
    const other = join(dir, 'other.conf');
    writeFileSync(other, `control-socket: ${join(dir, 'other.sock')}\n`);
    assert.is(resolveControlSocket({ config: other }, unit), join(dir, 'other.sock'));
    assert.is(resolveControlSocket({}, unit), unitSock);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s('reload: a bad peer line in --config FILE is found before asking the daemon: listed at its line, exit 2', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-sock-'));
  const writes: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  const exitBefore = process.exitCode;
  try {
    const conf = join(dir, 'ra.conf');
    writeFileSync(conf, `data-dir: ${join(dir, 'data')}\nnode-name: mxa\nreplication-key: ${'ab'.repeat(32)}\npeer: mxd=nonsense\n`);
    process.stderr.write = ((chunk: string | Uint8Array) => (writes.push(String(chunk)), true)) as typeof process.stderr.write;
    // Before, only the schema was checked here: the daemon was asked and rejected it (exit 1).
    assert.is(resolveControlSocket({ config: conf }, { configFile: join(dir, 'unit.conf'), controlSocket: join(dir, 'unit.sock') }, { strict: true }), null);
    process.stderr.write = write;
    assert.is(process.exitCode, EXIT_USAGE);
    assert.match(writes.join(''), `${conf}:4`);
    assert.match(writes.join(''), 'mxd=nonsense');
  } finally {
    process.stderr.write = write;
    process.exitCode = exitBefore;
    rmSync(dir, { recursive: true, force: true });
  }
});

s('stats and cache: problems outside control-socket and data-dir are listed, and the socket found all the same', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-sock-'));
  const writes: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  const exitBefore = process.exitCode;
  const unit = { configFile: join(dir, 'unit.conf'), controlSocket: join(dir, 'unit.sock') };
  const conf = join(dir, 'mx.conf');
  const found = (text: string): { socket: string | null; stderr: string; exitCode: typeof process.exitCode } => {
    writeFileSync(conf, text);
    writes.length = 0;
    process.exitCode = undefined;
    process.stderr.write = ((chunk: string | Uint8Array) => (writes.push(String(chunk)), true)) as typeof process.stderr.write;
    try {
      return { socket: resolveControlSocket({ config: conf }, unit), stderr: writes.join(''), exitCode: process.exitCode };
    } finally {
      process.stderr.write = write;
    }
  };
  try {
    const data = join(dir, 'data');
    const twice = found(`data-dir: ${data}\nlog-level: info\nlog-level: warn\npeer: mxd=nonsense\nno-such-key: 1\n`);
    assert.is(twice.socket, join(data, 'control.sock'));
    assert.is(twice.exitCode, undefined);
    assert.match(twice.stderr, `${conf}:3: "log-level" is set more than once`);
    assert.match(twice.stderr, 'mxd=nonsense');
    assert.match(twice.stderr, `4 problem(s) in the configuration; asking the daemon on ${join(data, 'control.sock')} all the same`);
    // Lines that may place the socket elsewhere: not guessed.
    for (const text of [`data-dir: ${data}\ndata-dir: /elsewhere\n`, `data-dir: ${data}\ncontrol-socket: relative/../x\ncontrol-socket: /y\n`, `data-dir: ${data}\ncontrol_socket: /run/x.sock\n`, `data-dir ${data}\n`]) {
      const r = found(text);
      assert.is(r.socket, null, text);
      assert.is(r.exitCode, EXIT_USAGE, text);
      assert.match(r.stderr, 'the daemon was not asked: its control socket depends on them (fix them, or name the socket with --control-socket PATH)');
    }
  } finally {
    process.stderr.write = write;
    process.exitCode = exitBefore;
    rmSync(dir, { recursive: true, force: true });
  }
});

s('--data-dir names the daemon\'s data folder: its control.sock, unless --config sets control-socket', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-sock-'));
  try {
    const unitConf = join(dir, 'mxsentry.conf');
    const unitSock = join(dir, 'unit.sock');
    writeFileSync(unitSock, '');
    writeFileSync(unitConf, `data-dir: ${join(dir, 'data')}\n`);
    const unit = { configFile: unitConf, controlSocket: unitSock };
    // Alone, and with a file that leaves control-socket to the data dir: the flag's folder, not the unit's socket.
    assert.is(resolveControlSocket({ 'data-dir': join(dir, 'srv') }, unit), join(dir, 'srv', 'control.sock'));
    assert.is(resolveControlSocket({ 'data-dir': join(dir, 'srv'), config: unitConf }, unit), join(dir, 'srv', 'control.sock'));
    const other = join(dir, 'other.conf');
    writeFileSync(other, `control-socket: ${join(dir, 'other.sock')}\n`);
    assert.is(resolveControlSocket({ 'data-dir': join(dir, 'srv'), config: other }, unit), join(dir, 'other.sock'));
    assert.is(resolveControlSocket({ 'data-dir': join(dir, 'srv'), 'control-socket': '/x/c.sock' }, unit), '/x/c.sock');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s('--data-dir naming the unit\'s data folder finds the unit\'s socket (its ExecStart passes --control-socket)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-sock-'));
  try {
    const unitConf = join(dir, 'mxsentry.conf');
    const unitSock = join(dir, 'unit.sock');
    const unitData = join(dir, 'state');
    writeFileSync(unitSock, '');
    writeFileSync(unitConf, `data-dir: ${join(dir, 'data')}\n`);
    const unit = { configFile: unitConf, controlSocket: unitSock, dataDir: unitData };
    assert.is(resolveControlSocket({ 'data-dir': unitData }, unit), unitSock);
    assert.is(resolveControlSocket({ 'data-dir': `${unitData}/`, config: unitConf }, unit), unitSock);
    // Another folder is another daemon's.
    assert.is(resolveControlSocket({ 'data-dir': join(dir, 'srv') }, unit), join(dir, 'srv', 'control.sock'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s('quantiles from buckets', () => {
  const h = new Histogram([0.001, 0.01, 0.1]);
  assert.is(histogramQuantile(h.snapshot(), 0.5), '-');
  for (const v of [0.0005, 0.005, 0.005, 0.05, 0.5]) h.observe(v);
  assert.is(histogramQuantile(h.snapshot(), 0.5), '<= 10 ms');
  assert.is(histogramQuantile(h.snapshot(), 0.9), '> 100 ms');
});

s('human stats name every part', async () => {
  const text = formatStats(await collectStats(fakeSources({ replication: () => ({ peers: [{ name: 'mx2', connected: false, lagRecords: 12, lagSec: 30 }] }) })));
  assert.match(text, /^mxsentry 9\.9\.9, up 1h 2m\n/);
  assert.match(text, /answers by source: local 1, packet-cache 3, cache 2, recursion 6, stale 1/);
  assert.match(text, /SERVFAIL causes \(DNS clients\): deadline 1, all-servers-failed 1$/m);
  assert.match(text, /SERVFAIL causes \(the policy service's own lookups: DNS lists, HELO\): no-servers 4$/m);
  assert.match(text, /hit ratio 75\.0 %/);
  assert.match(text, /step 10 greylist +DEFER_IF_PERMIT +2/);
  assert.match(text, /List +zen\.spamhaus\.org \(block\): 3 queries, 1 listed, 1 error answers, 1 failed lookups \(servers SERVFAIL, REFUSED or unreachable\), 0 timeouts, 2 skipped \(not asked: suspended by its self test, or its first self test not done\)$/m);
  assert.match(text, /Store +healthy; 2 triplets/);
  assert.match(text, /Peer +mx2: DISCONNECTED, lag 12 changes, 30 s/);
  assert.not.match(text, /connections refused/, 'no line while nothing was refused');
});

s('human stats say when Postfix was refused a policy connection or one was closed on it', async () => {
  const server = { connectionsOpen: 200, connectionsAccepted: 500, connectionsRefused: 7, requests: 900, malformed: 0, protocolErrors: 2, internalErrors: 0, idleTimeouts: 3, requestTimeouts: 1 };
  const text = formatStats(await collectStats(fakeSources({ policyServer: { stats: () => server } })));
  assert.match(text, /connections refused 7 \(policy-max-connections or shutdown\), closed for protocol errors 2, unfinished requests 1, failed decisions 0/);
});

s('human stats give the reason of an open store that failed (a full disk), beside its counts', async () => {
  const counts = { triplets: 2, clients: 0, replogEntries: 2, peers: 0, usedBytes: 65536, limitBytes: 1 << 30, corruptRecords: 0 };
  const store = () => ({ healthy: false, counts: () => Promise.resolve(counts), error: 'STORE_ERR_FULL: greylist decisions: No space left on device' });
  const text = formatStats(await collectStats(fakeSources({ store })));
  assert.match(text, /^Store {6}NOT HEALTHY \(STORE_ERR_FULL: greylist decisions: No space left on device\); 2 triplets/m);
});

s.run();
