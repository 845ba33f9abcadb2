// Starts the two resolvers the DNS bench compares, as real processes on 127.0.0.1: the mxsentry
// daemon (bin/mxsentry serve) and Unbound from Debian (unbound -d with a generated config), both with
// one thread/process, the same root hints and roughly the same cache sizes, no DNSSEC validation.
// Called by bench/dns-bench.ts. Each process is registered for cleanup; nothing here binds or
// queries anything outside loopback.
import dgram from 'node:dgram';
import net from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../../src/util/clock.js';
import { MxError } from '../../src/util/errors.js';
import { packageRoot } from '../../src/util/paths.js';
import { waitForAnswer } from './dns-probe.js';
import { ManagedProcess, runToCompletion, type ResourceRegistry } from './managed-process.js';

/** A running resolver under test. */
export interface ResolverInstance {
  /** 'mxsentry' or 'unbound'. */
  readonly name: string;
  readonly server: string;
  readonly port: number;
  readonly process: ManagedProcess;
  /** Stops the process (SIGTERM, then SIGKILL) and throws if it had died on its own before. */
  stop(): Promise<void>;
}

/** What both resolvers get. */
export interface ResolverSetup {
  /** Temp folder of this resolver (config, data dir). */
  dir: string;
  rootHintsFile: string;
  /** Port of the fake authorities (53 for Unbound, which cannot use another). */
  upstreamPort: number;
  /** RRset (and negative) cache budget in bytes; Unbound: rrset-cache-size. */
  cacheBytes: number;
  /** Encoded-answer cache budget in bytes; Unbound: msg-cache-size. */
  answerCacheBytes: number;
  /** SO_RCVBUF of the listening UDP socket, bytes; 0: the OS default. Unbound: so-rcvbuf. */
  soRcvbuf: number;
  clock: Clock;
  /** Node.js flags for mxsentry's process (e.g. --cpu-prof); ignored by the other resolvers. */
  nodeArgs?: string[];
}

const LISTEN_ADDRESS = '127.0.0.1';
const START_DEADLINE_MS = 20_000;

/** A port free for both UDP and TCP on 127.0.0.1 right now (bounded number of tries). */
export async function freeLoopbackPort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = dgram.createSocket('udp4');
    const port = await new Promise<number>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind({ port: 0, address: LISTEN_ADDRESS, exclusive: true }, () => resolve(udp.address().port));
    });
    const tcpFree = await new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen({ port, host: LISTEN_ADDRESS, exclusive: true }, () => srv.close(() => resolve(true)));
    });
    await new Promise<void>((resolve) => udp.close(() => resolve()));
    if (tcpFree) return port;
  }
  throw new MxError('BENCH_ERR_PORT', 'no free UDP+TCP port on 127.0.0.1 after 20 tries');
}

function instance(name: string, port: number, proc: ManagedProcess): ResolverInstance {
  return {
    name,
    server: LISTEN_ADDRESS,
    port,
    process: proc,
    async stop() {
      const before = proc.exitStatus;
      await proc.stop();
      if (before) throw new MxError('BENCH_ERR_EXIT', `${name} had exited during the bench (${before.code ?? before.signal}): ${proc.describeOutput()}`);
    },
  };
}

async function waitReady(inst: ResolverInstance, clock: Clock): Promise<void> {
  try {
    // localhost. is a built-in local zone of both: the answer needs no upstream query.
    await waitForAnswer(inst.server, inst.port, 'localhost.', 'A', { deadlineMs: START_DEADLINE_MS, hasExited: () => inst.process.exitStatus !== null, clock });
  } catch (err) {
    throw new MxError('BENCH_ERR_START', `${inst.name} did not start: ${(err as Error).message}\n${inst.process.describeOutput()}`, { cause: err });
  }
}

/**
 * Starts the UDP floor responder (lib/udp-floor-echo.ts): what any Node.js process pays per
 * query for receiving and sending alone, measured with the same dnsperf phase as the resolvers.
 */
export async function startUdpFloor(setup: ResolverSetup, registry: ResourceRegistry): Promise<ResolverInstance> {
  const port = await freeLoopbackPort();
  const script = join(packageRoot(), 'dist', 'bench', 'lib', 'udp-floor-echo.js');
  const proc = new ManagedProcess({ name: 'node-udp-floor', command: process.execPath, args: [script, LISTEN_ADDRESS, String(port)], cwd: setup.dir }, registry);
  const inst = instance('node-udp-floor', port, proc);
  await waitReady(inst, setup.clock);
  return inst;
}

/**
 * Starts the cold-path floor (lib/udp-floor-forward.ts): a Node.js forwarder that sends each client
 * query to `upstream` over a fresh connected UDP socket and relays the reply, with no DNS work; what
 * any Node.js resolver pays per cold name that costs one upstream query.
 */
export async function startColdFloor(setup: ResolverSetup, upstream: { address: string; port: number }, registry: ResourceRegistry): Promise<ResolverInstance> {
  const port = await freeLoopbackPort();
  const script = join(packageRoot(), 'dist', 'bench', 'lib', 'udp-floor-forward.js');
  const args = [script, LISTEN_ADDRESS, String(port), upstream.address, String(upstream.port)];
  const proc = new ManagedProcess({ name: 'node-cold-floor', command: process.execPath, args, cwd: setup.dir }, registry);
  const inst = instance('node-cold-floor', port, proc);
  await waitReady(inst, setup.clock);
  return inst;
}

/** Starts `node bin/mxsentry serve` with the bench's settings and waits until it answers. */
export async function startMxsentry(setup: ResolverSetup, registry: ResourceRegistry): Promise<ResolverInstance> {
  const port = await freeLoopbackPort();
  // The policy service cannot be turned off; keep it off the well-known 10023 that a real or test
  // instance may hold.
  const policyPort = await freeLoopbackPort();
  const args = [
    ...(setup.nodeArgs ?? []),
    join(packageRoot(), 'bin', 'mxsentry'), 'serve',
    '--dns-listen', `${LISTEN_ADDRESS}:${port}`,
    '--root-hints', setup.rootHintsFile,
    '--query-loopback',
    '--upstream-port', String(setup.upstreamPort),
    '--data-dir', join(setup.dir, 'data'),
    '--log-level', 'warn',
    '--policy-listen', `${LISTEN_ADDRESS}:${policyPort}`,
    '--do-ip6', 'false',
    '--use-caps-for-id', 'true',
    '--qname-minimisation', 'relaxed',
    '--prefetch', 'true',
    '--cache-size', String(setup.cacheBytes),
    '--packet-cache-size', String(setup.answerCacheBytes),
    '--so-rcvbuf', String(setup.soRcvbuf),
  ];
  const proc = new ManagedProcess({ name: 'mxsentry', command: process.execPath, args, cwd: setup.dir }, registry);
  const inst = instance('mxsentry', port, proc);
  await waitReady(inst, setup.clock);
  return inst;
}

/**
 * The Unbound configuration matching mxsentry's bench settings: iterator only (no validator, as
 * mxsentry has none yet), 0x20, QNAME minimisation, prefetch, one thread, no IPv6 upstream,
 * loopback authorities allowed, no chroot/privilege drop/daemonizing, no remote control.
 */
export function unboundConfig(setup: ResolverSetup, port: number): string {
  const mib = (bytes: number): string => `${Math.max(1, Math.round(bytes / (1 << 20)))}m`;
  return [
    'server:',
    '  verbosity: 0',
    `  interface: ${LISTEN_ADDRESS}@${port}`,
    '  interface-automatic: no',
    '  access-control: 127.0.0.0/8 allow',
    '  do-ip4: yes',
    '  do-ip6: no',
    '  do-udp: yes',
    '  do-tcp: yes',
    '  do-not-query-localhost: no',
    `  root-hints: "${setup.rootHintsFile}"`,
    '  use-caps-for-id: yes',
    '  qname-minimisation: yes',
    '  prefetch: yes',
    '  num-threads: 1',
    '  do-daemonize: no',
    '  chroot: ""',
    '  username: ""',
    '  pidfile: ""',
    `  directory: "${setup.dir}"`,
    '  logfile: ""',
    '  use-syslog: no',
    '  harden-referral-path: no',
    '  module-config: "iterator"',
    `  rrset-cache-size: ${mib(setup.cacheBytes)}`,
    `  msg-cache-size: ${mib(setup.answerCacheBytes)}`,
    `  so-rcvbuf: ${setup.soRcvbuf}`,
    'remote-control:',
    '  control-enable: no',
    '',
  ].join('\n');
}

/** Writes the config, checks it with unbound-checkconf, starts `unbound -d -c FILE`, waits until it answers. */
export async function startUnbound(setup: ResolverSetup, registry: ResourceRegistry): Promise<ResolverInstance> {
  if (setup.upstreamPort !== 53) throw new MxError('BENCH_ERR_CONFIG', `Unbound queries authorities on port 53 only, not ${setup.upstreamPort}`);
  const port = await freeLoopbackPort();
  const confFile = join(setup.dir, 'unbound.conf');
  writeFileSync(confFile, unboundConfig(setup, port));
  await runToCompletion({ name: 'unbound-checkconf', command: 'unbound-checkconf', args: [confFile], timeoutMs: 20_000 }, registry);
  const proc = new ManagedProcess({ name: 'unbound', command: 'unbound', args: ['-d', '-c', confFile], cwd: setup.dir }, registry);
  const inst = instance('unbound', port, proc);
  await waitReady(inst, setup.clock);
  return inst;
}
