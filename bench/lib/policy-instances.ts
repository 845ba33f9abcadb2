// Starts the two policy services the policy bench compares, as real processes on 127.0.0.1: the
// mxsentry daemon (bin/mxsentry serve: DNS resolver + policy service with a DNSBL on the fake tree)
// and postgrey from Debian (foreground, its own dbdir, the same delay and whitelist files). Called
// by bench/policy-bench.ts. Each process is registered for cleanup; nothing here binds or connects
// outside loopback, and nothing touches the system's postgrey service or /var/lib/postgrey.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import type { Clock } from '../../src/util/clock.js';
import { MxError } from '../../src/util/errors.js';
import { packageRoot } from '../../src/util/paths.js';
import { waitForAnswer } from './dns-probe.js';
import { ManagedProcess, type ResourceRegistry } from './managed-process.js';
import { freeLoopbackPort } from './resolver-instances.js';

/** A running policy service under test. */
export interface PolicyInstance {
  readonly name: 'mxsentry' | 'postgrey';
  readonly host: string;
  readonly port: number;
  readonly process: ManagedProcess;
  /** Stops the process (SIGTERM, then SIGKILL) and throws if it had died on its own before. */
  stop(): Promise<void>;
}

/** What both services get. */
export interface PolicySetup {
  /** Temp folder of this service (data dir / dbdir). */
  dir: string;
  /** Greylisting delay, seconds (postgrey --delay, mxsentry --delay). */
  delaySec: number;
  /** postgrey whitelist files given to both (Debian's defaults when present); empty: none. */
  whitelistClientFiles: string[];
  whitelistRecipientFiles: string[];
  clock: Clock;
}

/** mxsentry's extra setup: where its resolver finds the fake tree and which DNSBL it asks. */
export interface MxsentryPolicySetup extends PolicySetup {
  rootHintsFile: string;
  upstreamPort: number;
  /** `--dnsbl` value (postscreen dnsbl_sites syntax), e.g. 'dnsbl.example.net'. */
  dnsbl: string;
  /** --log-level of the daemon; 'info' (the default) logs one line per decision, as postgrey does. */
  logLevel: string;
  /** When set, the daemon runs under `node --cpu-prof` and writes its profile here at exit. */
  cpuProfileDir?: string;
}

const LISTEN_ADDRESS = '127.0.0.1';
const START_DEADLINE_MS = 20_000;

/** Debian's postgrey whitelist files, when installed (given to both services alike). */
export function debianWhitelistFiles(): { clients: string[]; recipients: string[] } {
  const pick = (f: string): string[] => (existsSync(f) ? [f] : []);
  return { clients: pick('/etc/postgrey/whitelist_clients'), recipients: pick('/etc/postgrey/whitelist_recipients') };
}

function instance(name: PolicyInstance['name'], port: number, proc: ManagedProcess): PolicyInstance {
  return {
    name,
    host: LISTEN_ADDRESS,
    port,
    process: proc,
    async stop() {
      const before = proc.exitStatus;
      await proc.stop();
      if (before) throw new MxError('BENCH_ERR_EXIT', `${name} had exited during the bench (${before.code ?? before.signal}): ${proc.describeOutput()}`);
    },
  };
}

/** Waits until a TCP connection to host:port succeeds (bounded); throws at once if the process exits. */
export async function waitForTcp(host: string, port: number, opts: { deadlineMs: number; hasExited: () => boolean; clock: Clock }): Promise<void> {
  const start = opts.clock.nowMs();
  let last: unknown = null;
  for (let attempt = 0; attempt < 1000; attempt++) {
    if (opts.hasExited()) break;
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host, port });
      const timer = setTimeout(() => {
        s.destroy();
        resolve(false);
      }, 500);
      s.once('connect', () => {
        clearTimeout(timer);
        s.end();
        s.destroy();
        resolve(true);
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        last = err;
        resolve(false);
      });
    });
    if (ok) return;
    if (opts.clock.nowMs() - start > opts.deadlineMs) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new MxError('BENCH_ERR_START', `no TCP listener on ${host}:${port} (${opts.hasExited() ? 'the process exited' : `after ${opts.deadlineMs} ms`}): ${(last as Error | null)?.message ?? ''}`, { cause: last });
}

/** Starts `node bin/mxsentry serve` with DNS and the policy service; waits until both answer. */
export async function startMxsentryPolicy(setup: MxsentryPolicySetup, registry: ResourceRegistry): Promise<PolicyInstance> {
  const dnsPort = await freeLoopbackPort();
  const policyPort = await freeLoopbackPort();
  const args = [
    join(packageRoot(), 'bin', 'mxsentry'), 'serve',
    '--dns-listen', `${LISTEN_ADDRESS}:${dnsPort}`,
    '--policy-listen', `${LISTEN_ADDRESS}:${policyPort}`,
    '--root-hints', setup.rootHintsFile,
    '--query-loopback',
    '--upstream-port', String(setup.upstreamPort),
    '--do-ip6', 'false',
    '--data-dir', join(setup.dir, 'data'),
    '--log-level', setup.logLevel,
    '--dnsbl', setup.dnsbl,
    '--delay', String(setup.delaySec),
    ...setup.whitelistClientFiles.flatMap((f) => ['--whitelist-clients', f]),
    ...setup.whitelistRecipientFiles.flatMap((f) => ['--whitelist-recipients', f]),
  ];
  // One decision log line per request on stdout: keep only a short tail of it.
  const nodeArgs = setup.cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', setup.cpuProfileDir] : [];
  const proc = new ManagedProcess({ name: 'mxsentry', command: process.execPath, args: [...nodeArgs, ...args], cwd: setup.dir, maxOutputBytes: 64 << 10 }, registry);
  const inst = instance('mxsentry', policyPort, proc);
  const wait = { deadlineMs: START_DEADLINE_MS, hasExited: () => proc.exitStatus !== null, clock: setup.clock };
  try {
    await waitForAnswer(LISTEN_ADDRESS, dnsPort, 'localhost.', 'A', wait);
    await waitForTcp(LISTEN_ADDRESS, policyPort, wait);
  } catch (err) {
    throw new MxError('BENCH_ERR_START', `mxsentry did not start: ${(err as Error).message}\n${proc.describeOutput()}`, { cause: err });
  }
  return inst;
}

/** User and group postgrey runs as: the bench's own (it owns the dbdir), not the postgrey account. */
function currentUserAndGroup(): { user: string; group: string } {
  const user = userInfo().username;
  const group = execFileSync('id', ['-gn'], { encoding: 'utf8' }).trim();
  return { user, group };
}

/**
 * Starts postgrey in the foreground (`postgrey --inet=127.0.0.1:PORT --dbdir=...`, not daemonized,
 * so it logs one line per decision to stderr instead of syslog) and waits for its listener.
 */
export async function startPostgrey(setup: PolicySetup, registry: ResourceRegistry): Promise<PolicyInstance> {
  const port = await freeLoopbackPort();
  const dbdir = join(setup.dir, 'db');
  mkdirSync(dbdir, { recursive: true });
  const { user, group } = currentUserAndGroup();
  const args = [
    `--inet=${LISTEN_ADDRESS}:${port}`,
    `--dbdir=${dbdir}`,
    `--delay=${setup.delaySec}`,
    `--pidfile=${join(setup.dir, 'postgrey.pid')}`,
    `--user=${user}`,
    `--group=${group}`,
    `--hostname=bench.invalid`,
    ...setup.whitelistClientFiles.map((f) => `--whitelist-clients=${f}`),
    ...setup.whitelistRecipientFiles.map((f) => `--whitelist-recipients=${f}`),
  ];
  const proc = new ManagedProcess({ name: 'postgrey', command: 'postgrey', args, cwd: setup.dir, maxOutputBytes: 64 << 10 }, registry);
  const inst = instance('postgrey', port, proc);
  try {
    await waitForTcp(LISTEN_ADDRESS, port, { deadlineMs: START_DEADLINE_MS, hasExited: () => proc.exitStatus !== null, clock: setup.clock });
  } catch (err) {
    throw new MxError('BENCH_ERR_START', `postgrey did not start (apt-get install -y postgrey): ${(err as Error).message}\n${proc.describeOutput()}`, { cause: err });
  }
  return inst;
}
