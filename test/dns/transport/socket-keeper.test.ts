// The native UDP module's socket keeper under a descriptor limit: it keeps at most a 32nd of the
// limit ready per family (and none below 4), so the rest of the process keeps its descriptors,
// and queries are answered either way. Each case runs a child under `prlimit --nofile`.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { nativeUdp } from '../../../src/native/native-udp.js';
import { requirePeer, skipTest } from '../../helpers/peers.js';

const s = suite('dns/transport: socket keeper and the descriptor limit');
const child = fileURLToPath(new URL('../../helpers/keeper-limit-child.js', import.meta.url));

/** The child's report under `prlimit --nofile=limit`, or null after a printed skip (no native module, no prlimit). */
function runUnder(limit: number): { answered: number; held: number } | null {
  const name = `socket keeper under --nofile=${limit}`;
  if (!nativeUdp().module) {
    skipTest(name, 'the native UDP module is not built');
    return null;
  }
  if (!requirePeer('prlimit', name)) return null;
  const r = spawnSync('prlimit', [`--nofile=${limit}:${limit}`, process.execPath, child], { encoding: 'utf8', timeout: 30_000 });
  assert.is(r.status, 0, `child exited ${String(r.status)}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { answered: number; held: number };
}

s('a limit of 640: at most 20 ready sockets (a 32nd), every query answered', () => {
  const report = runUnder(640);
  if (!report) return;
  assert.is(report.answered, 300);
  assert.ok(report.held > 0 && report.held <= 20, `keeper holds ${report.held}`);
});

s('a limit of 100: no keeper (it would keep 3), every query answered on sockets of its own', () => {
  const report = runUnder(100);
  if (!report) return;
  assert.is(report.answered, 300);
  assert.is(report.held, 0);
});

s.run();
