// The shipped systemd units: `systemd-analyze verify` passes without a single warning, the service's
// offline security exposure is printed and stays below 2.0, and the unit facts the daemon relies on
// hold (socket names understood by startDaemon, Type=notify with NotifyAccess=all, no
// MemoryDenyWriteExecute, which V8 cannot run under).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_KEY_FILE, keygenText } from '../../src/cli/replication-commands.js';
import { packageRoot } from '../../src/util/paths.js';
import { requirePeer } from '../helpers/peers.js';

const s = suite('systemd/units');
const dir = join(packageRoot(), 'systemd');
const UNITS = ['mxsentry.service', 'mxsentry-dns-udp.socket', 'mxsentry-dns-tcp.socket', 'mxsentry-policy.socket'];
const MAX_EXPOSURE = 2.0;

function run(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((done) => {
    execFile(cmd, args, { timeout: 60_000, env: { ...process.env, SYSTEMD_COLORS: '0', SYSTEMD_PAGER: '' } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      done({ code, out: `${stdout}${stderr}` });
    });
  });
}

function unit(name: string): string {
  return readFileSync(join(dir, name), 'utf8');
}

s('systemd-analyze verify: no error, no warning', async () => {
  const analyze = requirePeer('systemd-analyze', 'systemd units verify');
  if (!analyze) return;
  const r = await run(analyze, ['verify', ...UNITS.map((u) => join(dir, u))]);
  assert.is(r.out.trim(), '', `systemd-analyze verify printed:\n${r.out}`);
  assert.is(r.code, 0);
});

s(`systemd-analyze security --offline=true: exposure below ${MAX_EXPOSURE}`, async () => {
  const analyze = requirePeer('systemd-analyze', 'systemd units security');
  if (!analyze) return;
  const r = await run(analyze, ['security', '--offline=true', join(dir, 'mxsentry.service')]);
  const m = /Overall exposure level for mxsentry\.service: ([0-9.]+)/.exec(r.out);
  assert.ok(m, `no exposure score in:\n${r.out}`);
  console.log(`  systemd-analyze security --offline=true mxsentry.service: exposure ${m[1]}`);
  assert.ok(Number(m[1]) < MAX_EXPOSURE, `exposure ${m[1]} is not below ${MAX_EXPOSURE}`);
});

s('the replication key drop-in keygen and README give (LoadCredential=) verifies cleanly and keeps the exposure', async () => {
  const text = keygenText('ab'.repeat(32), { name: 'mx1', address: '192.0.2.1', port: 7410 });
  const line = /^#\s+(LoadCredential=\S+)$/m.exec(text)?.[1];
  assert.is(line, `LoadCredential=replication-key:${DEFAULT_KEY_FILE}`);
  assert.ok(readFileSync(join(packageRoot(), 'README.md'), 'utf8').includes(`${line}\n`), 'README shows the same drop-in');
  assert.ok(unit('mxsentry.service').includes(`#   ${line}\n`), 'the unit names it too');
  const analyze = requirePeer('systemd-analyze', 'systemd units verify with the replication key drop-in');
  if (!analyze) return;
  const tmp = mkdtempSync(join(tmpdir(), 'mxsentry-unit-'));
  try {
    copyFileSync(join(dir, 'mxsentry.service'), join(tmp, 'mxsentry.service'));
    mkdirSync(join(tmp, 'mxsentry.service.d'));
    writeFileSync(join(tmp, 'mxsentry.service.d', 'override.conf'), `[Service]\n${line}\n`);
    const r = await run(analyze, ['verify', join(tmp, 'mxsentry.service')]);
    assert.is(r.out.trim(), '', `systemd-analyze verify printed:\n${r.out}`);
    assert.is(r.code, 0);
    const sec = await run(analyze, ['security', '--offline=true', join(tmp, 'mxsentry.service')]);
    const m = /Overall exposure level for mxsentry\.service: ([0-9.]+)/.exec(sec.out);
    assert.ok(m && Number(m[1]) < MAX_EXPOSURE, `exposure with the drop-in: ${sec.out.slice(-300)}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

s('unit facts the daemon depends on', () => {
  const service = unit('mxsentry.service');
  assert.match(service, /^Type=notify$/m);
  assert.match(service, /^NotifyAccess=all$/m);
  assert.match(service, /^WatchdogSec=\d+/m);
  assert.match(service, /^StateDirectory=mxsentry$/m);
  assert.match(service, /^DynamicUser=yes$/m);
  assert.match(service, /^CapabilityBoundingSet=CAP_NET_BIND_SERVICE$/m);
  assert.match(service, /^RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX$/m);
  assert.not.match(service, /^MemoryDenyWriteExecute=(yes|true|1)/m);
  assert.match(service, /--control-socket \/run\/mxsentry\/control\.sock/);
  // startDaemon adopts inherited fds by these names only.
  assert.match(unit('mxsentry-dns-udp.socket'), /^FileDescriptorName=dns-udp$/m);
  assert.match(unit('mxsentry-dns-udp.socket'), /^ListenDatagram=/m);
  assert.match(unit('mxsentry-dns-tcp.socket'), /^FileDescriptorName=dns-tcp$/m);
  assert.match(unit('mxsentry-dns-tcp.socket'), /^ListenStream=/m);
  assert.match(unit('mxsentry-policy.socket'), /^FileDescriptorName=policy$/m);
  for (const u of UNITS.slice(1)) assert.match(unit(u), /^Service=mxsentry\.service$/m, u);
});

s.run();
