// `mxsentry cache flush|dump`, `mxsentry stats` and `mxsentry reload`: commands that act on the
// RUNNING daemon through its control socket (src/control/). They never open the store or the caches
// themselves. Exit codes (README "Exit codes"): 0 done, 1 the daemon reported a failure, 2 bad usage
// or config, 3 the daemon is not running, 4 permission denied on the socket.
import { existsSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';
import { loadConfig } from '../config/load.js';
import { sendControlRequest } from '../control/control-client.js';
import { ControlError } from '../control/control-error.js';
import type { DumpResult, FlushResult } from '../control/control-commands.js';
import { controlSocketPath } from '../control/operations.js';
import type { ReloadReport } from '../control/reload.js';
import type { HistogramSnapshot } from '../metrics/histogram.js';
import type { StatsSnapshot } from '../metrics/stats-snapshot.js';
import { suggestKey } from '../config/schema.js';
import { describeError, type ConfigError } from '../util/errors.js';
import { lineProblemsOf } from './config-check.js';
import { COMMAND_NOT_RUN, printConfigErrors } from './config-flags.js';

/** Exit codes scripts can rely on. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_NOT_RUNNING = 3;
export const EXIT_PERMISSION = 4;

/** Where the systemd unit puts the socket (RuntimeDirectory=mxsentry). */
export const SYSTEMD_CONTROL_SOCKET = '/run/mxsentry/control.sock';
/** Prints a usage problem and sets exit code 2 (EXIT_USAGE) for the command to return with. */
export function usageError(message: string): void {
  process.stderr.write(`mxsentry: ${message}\n`);
  process.exitCode = EXIT_USAGE;
}

/** The configuration file the packaged unit reads. */
export const DEFAULT_CONFIG_FILE = '/etc/mxsentry/mxsentry.conf';
/** The data dir the packaged unit passes (StateDirectory=mxsentry), overriding the file's data-dir. */
export const SYSTEMD_DATA_DIR = '/var/lib/mxsentry';

interface SocketArgs {
  'control-socket'?: string;
  config?: string;
  'data-dir'?: string;
  json?: boolean;
}

/** The keys the control socket's path comes from (controlSocketPath). */
const SOCKET_KEYS: ReadonlySet<string> = new Set(['control-socket', 'data-dir']);

/**
 * Whether a problem of the file may put the control socket somewhere else than its values say: a
 * problem of control-socket or data-dir, an unknown key that looks like one of them (a typo), a
 * line that is no "key: value", or a file that could not be read. Any other problem leaves the
 * socket where it is, so the running daemon (started before the file broke) can still be asked.
 */
export function mayMoveSocket(problem: ConfigError): boolean {
  if (problem.key === undefined || SOCKET_KEYS.has(problem.key)) return true;
  return problem.code === 'CONFIG_ERR_UNKNOWN_KEY' && SOCKET_KEYS.has(suggestKey(problem.key) ?? '');
}

/** printConfigErrors' outcome when the file's problems may have moved the socket. */
export const SOCKET_NOT_FOUND = 'the daemon was not asked: its control socket depends on them (fix them, or name the socket with --control-socket PATH)';

/** printConfigErrors' outcome when the daemon is asked despite the file's problems. */
export function askedDespiteProblems(socket: string): string {
  return `asking the daemon on ${socket} all the same (none of them is in control-socket or data-dir, which place its socket); serve and reload refuse the file until they are fixed`;
}

function socketOptions<T>(y: Argv<T>, opts: { strict?: boolean } = {}): Argv<T & SocketArgs> {
  const config = opts.strict
    ? 'Configuration file of the running daemon (its control-socket or data-dir); a problem in it is listed and nothing is asked'
    : 'Configuration file of the running daemon (its control-socket or data-dir); problems in other keys are listed, and the daemon is asked all the same';
  return y
    .option('control-socket', { type: 'string', requiresArg: true, describe: `Control socket of the running daemon, without reading any configuration file [default: from --config, else ${SYSTEMD_CONTROL_SOCKET} when present, else from ${DEFAULT_CONFIG_FILE}, else ./data/control.sock]` })
    .option('config', { type: 'string', requiresArg: true, describe: config })
    .option('data-dir', { type: 'string', requiresArg: true, describe: `Data folder of the running daemon (its --data-dir): the socket is DIR/control.sock unless --config sets control-socket (${SYSTEMD_DATA_DIR}: the unit's socket when present)` }) as Argv<T & SocketArgs>;
}

/**
 * The socket to talk to: --control-socket; else the systemd unit's when --config names the unit's
 * file or --data-dir its state folder (the unit passes --control-socket) and the socket is there,
 * unless the two name another daemon's; else the one of --config (with
 * --data-dir in place of the file's data-dir, as the daemon's flag would be); else DIR/control.sock
 * of --data-dir; else the systemd unit's; else the one of /etc/mxsentry/mxsentry.conf; else the
 * default config's. A file's problems are printed; the socket is still found when none of them may
 * move it (mayMoveSocket), unless `strict` (reload: the daemon would refuse the file anyway). Null
 * after printing config errors (exit code 2 set). `unit` is for tests.
 */
export function resolveControlSocket(
  argv: SocketArgs,
  unit: { configFile: string; controlSocket: string; dataDir?: string } = { configFile: DEFAULT_CONFIG_FILE, controlSocket: SYSTEMD_CONTROL_SOCKET, dataDir: SYSTEMD_DATA_DIR },
  opts: { strict?: boolean } = {},
): string | null {
  if (argv['control-socket']) return argv['control-socket'];
  const dataDir = argv['data-dir'];
  const fromFile = (file: string): string | null => {
    const loaded = loadConfig({ file, ...(dataDir ? { flags: { 'data-dir': dataDir } } : {}) });
    // The cluster key file is root's (mode 0600): a user allowed on the socket need not read it to
    // find the socket, and the daemon checks the key itself when it re-reads the file.
    const problems = lineProblemsOf(loaded).filter((p) => !(p.key === 'replication-key-file' && isPermissionDenied(p.cause)));
    const socket = controlSocketPath(loaded.values);
    if (problems.length === 0) return socket;
    if (opts.strict || problems.some(mayMoveSocket)) {
      printConfigErrors(problems, opts.strict ? COMMAND_NOT_RUN : SOCKET_NOT_FOUND);
      process.exitCode = EXIT_USAGE;
      return null;
    }
    printConfigErrors(problems, askedDespiteProblems(socket));
    return socket;
  };
  // The unit's own file or state folder: its ExecStart passes --control-socket, which overrides the file's value.
  const unitConfig = argv.config === undefined || resolve(argv.config) === unit.configFile;
  const unitDataDir = dataDir === undefined ? argv.config !== undefined : unit.dataDir !== undefined && resolve(dataDir) === resolve(unit.dataDir);
  if (unitConfig && unitDataDir && existsSync(unit.controlSocket)) return unit.controlSocket;
  if (argv.config) return fromFile(argv.config);
  if (dataDir) return controlSocketPath(loadConfig({ flags: { 'data-dir': dataDir } }).values);
  if (existsSync(unit.controlSocket)) return unit.controlSocket;
  if (existsSync(unit.configFile)) return fromFile(unit.configFile);
  return controlSocketPath(loadConfig({}).values);
}

/** Sends one request; on failure prints the message, sets the exit code and hands the error to `failed`. */
async function call(argv: SocketArgs, request: { command: string; [k: string]: unknown }, failed?: (err: unknown) => void): Promise<unknown> {
  // A reload makes the daemon re-read its file: one with problems would be refused, so it is not asked.
  const path = resolveControlSocket(argv, undefined, { strict: request.command === 'reload' });
  if (path === null) return undefined;
  try {
    return await sendControlRequest(path, request);
  } catch (err) {
    process.stderr.write(`mxsentry: ${err instanceof ControlError ? err.message : describeError(err)}\n`);
    process.exitCode = exitCodeOf(err);
    failed?.(err);
    return undefined;
  }
}

/** Exit code for a failed control request. */
export function exitCodeOf(err: unknown): number {
  if (!(err instanceof ControlError)) return EXIT_FAILED;
  if (err.code === 'CONTROL_ERR_NOT_RUNNING') return EXIT_NOT_RUNNING;
  if (err.code === 'CONTROL_ERR_PERMISSION') return EXIT_PERMISSION;
  if (err.code === 'CONTROL_ERR_BAD_REQUEST') return EXIT_USAGE;
  return EXIT_FAILED;
}

interface FlushArgs extends SocketArgs {
  name?: string;
  zone?: string;
  infra?: boolean;
}

/** `mxsentry cache flush [NAME] [--zone ZONE] [--infra]` and `mxsentry cache dump`. */
export function cacheCommand(): CommandModule<object, SocketArgs> {
  return {
    command: 'cache <command>',
    describe: 'Flush or dump the running daemon\'s DNS cache (through the control socket)',
    builder: (y: Argv) =>
      y
        .command({
          command: 'flush [name]',
          describe: 'Remove a name (all types), a whole zone, the upstream server data, or everything',
          builder: (yy: Argv) =>
            socketOptions(
              yy
                .positional('name', { type: 'string', describe: 'Remove every cached record and answer owned by exactly this name' })
                .option('zone', { type: 'string', requiresArg: true, describe: 'Remove everything at or below this zone' })
                .option('infra', { type: 'boolean', describe: 'Forget upstream server RTTs, EDNS status and lameness' })
                .option('json', { type: 'boolean', describe: 'Print the result as JSON' })
                .conflicts('zone', ['name', 'infra'])
                .conflicts('infra', 'name')
                .example('$0 cache flush', 'Empty the RRset and packet caches')
                .example('$0 cache flush www.example.com', 'Forget one name')
                .example('$0 cache flush --zone zen.spamhaus.org', 'Forget every DNSBL answer of a list'),
            ) as unknown as Argv<FlushArgs>,
          handler: async (argv: ArgumentsCamelCase<FlushArgs>) => {
            const r = (await call(argv, {
              command: 'cache-flush',
              ...(argv.name ? { name: argv.name } : {}),
              ...(argv.zone ? { zone: argv.zone } : {}),
              ...(argv.infra ? { infra: true } : {}),
            })) as FlushResult | undefined;
            if (r === undefined) return;
            if (argv.json) process.stdout.write(`${JSON.stringify(r)}\n`);
            else process.stdout.write(`${describeFlush(r)}\n`);
          },
        })
        .command({
          command: 'dump',
          describe: 'Print the cache in zone-file format (RRsets, negative answers, upstream server data)',
          builder: (yy: Argv) => socketOptions(yy) as unknown as Argv<SocketArgs>,
          handler: async (argv: ArgumentsCamelCase<SocketArgs>) => {
            const r = (await call(argv, { command: 'cache-dump' })) as DumpResult | undefined;
            if (r === undefined) return;
            await writeLines(r.lines);
          },
        })
        .demandCommand(1, 'Name a cache command: flush or dump; see --help') as unknown as Argv<SocketArgs>,
    handler: () => undefined,
  };
}

/** Writes many lines with backpressure (a dump can be large; `| head` closes the pipe early). */
async function writeLines(lines: string[]): Promise<void> {
  const CHUNK = 1000;
  for (let i = 0; i < lines.length; i += CHUNK) {
    const text = `${lines.slice(i, i + CHUNK).join('\n')}\n`;
    if (!process.stdout.write(text)) await new Promise<void>((done) => process.stdout.once('drain', done));
  }
}

function describeFlush(r: FlushResult): string {
  const count = (n: number | undefined, one: string, many: string): string => `${n ?? 0} ${(n ?? 0) === 1 ? one : many}`;
  const what = `${count(r.rrsets, 'RRset or negative entry', 'RRsets and negative entries')}, ${count(r.packets, 'ready answer', 'ready answers')}`;
  switch (r.scope) {
    case 'infra':
      return `flushed upstream server data (${count(r.hosts, 'server', 'servers')})`;
    case 'all':
      return `flushed the whole cache (${what})`;
    default:
      return `flushed ${r.scope} ${r.target ?? ''} (${what})`;
  }
}

/** `mxsentry stats [--json]`. */
export function statsCommand(): CommandModule<object, SocketArgs> {
  return {
    command: 'stats',
    describe: 'Print the running daemon\'s counters: DNS, caches, upstream, policy, lists, greylist, replication',
    builder: (y: Argv) => socketOptions(y.option('json', { type: 'boolean', describe: 'Print the full snapshot as JSON' })) as unknown as Argv<SocketArgs>,
    handler: async (argv: ArgumentsCamelCase<SocketArgs>) => {
      const s = (await call(argv, { command: 'stats' })) as StatsSnapshot | undefined;
      if (s === undefined) return;
      process.stdout.write(argv.json ? `${JSON.stringify(s, null, 2)}\n` : formatStats(s));
    },
  };
}

/** `mxsentry reload`: the same as SIGHUP, but reports the outcome. */
export function reloadCommand(): CommandModule<object, SocketArgs> {
  return {
    command: 'reload',
    describe: 'Re-read the configuration file of the running daemon (like SIGHUP); exit 1 if it is rejected',
    builder: (y: Argv) => socketOptions(y.option('json', { type: 'boolean', describe: 'Print the result as JSON' }), { strict: true }) as unknown as Argv<SocketArgs>,
    handler: async (argv: ArgumentsCamelCase<SocketArgs>) => {
      // --json answers in JSON whatever happens: a rejected file is {"reloaded": false, ...} too.
      const failed = (err: unknown): void => {
        if (argv.json) process.stdout.write(`${JSON.stringify({ reloaded: false, code: err instanceof ControlError ? err.code : 'error', error: describeError(err) })}\n`);
      };
      const r = (await call(argv, { command: 'reload' }, failed)) as ReloadReport | undefined;
      if (r === undefined) return;
      if (argv.json) {
        process.stdout.write(`${JSON.stringify({ reloaded: true, ...r })}\n`);
        return;
      }
      process.stdout.write(`reloaded ${r.file ?? '(no file: flags and defaults)'}; changed: ${r.applied.join(', ') || 'nothing'}\n`);
      // --config finds the daemon; the daemon re-reads the file it was started with, never another.
      if (argv.config !== undefined && !sameFile(argv.config, r.file)) {
        process.stderr.write(`mxsentry: note: the daemon re-read ${r.file ?? 'no file (it was started without --config)'}, not ${argv.config}; ${argv.config} was used only to find its control socket (to run on another file, restart it with --config)\n`);
      }
      if (r.reread && r.reread.length > 0) process.stdout.write(`re-read: ${r.reread.join(', ')}\n`);
      if (r.restartNeeded.length > 0) process.stdout.write(`needs a restart to take effect: ${r.restartNeeded.join(', ')}\n`);
      for (const w of r.warnings ?? []) process.stderr.write(`mxsentry: config warning: ${w}\n`);
      for (const n of r.notes ?? []) process.stdout.write(`note: ${n}\n`);
    },
  };
}

/** True when both paths name one file (symlinks followed); false when either is missing. */
function sameFile(a: string, b: string | null | undefined): boolean {
  if (b === undefined || b === null) return false;
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return resolve(a) === resolve(b);
  }
}

function pct(x: number): string {
  return `${(x * 100).toFixed(1)} %`;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function duration(sec: number): string {
  const d = Math.floor(sec / 86400);
  const h = Math.floor((sec % 86400) / 3600);
  const m = Math.floor((sec % 3600) / 60);
  return d > 0 ? `${d}d ${h}h ${m}m` : h > 0 ? `${h}h ${m}m` : `${m}m ${sec % 60}s`;
}

function pairs(rec: Record<string, number>): string {
  const e = Object.entries(rec).filter(([, n]) => n > 0);
  return e.length > 0 ? e.map(([k, n]) => `${k} ${n}`).join(', ') : 'none';
}

/** Approximate quantile from bucket counts: the upper bound of the bucket holding it. */
export function histogramQuantile(h: HistogramSnapshot, q: number): string {
  if (h.count === 0) return '-';
  const rank = q * h.count;
  let seen = 0;
  for (let i = 0; i < h.counts.length; i++) {
    seen += h.counts[i] ?? 0;
    if (seen >= rank) return i < h.bucketsSec.length ? `<= ${h.bucketsSec[i]! * 1000} ms` : `> ${h.bucketsSec[h.bucketsSec.length - 1]! * 1000} ms`;
  }
  return '-';
}

/** The human form of `stats`. */
export function formatStats(s: StatsSnapshot): string {
  const d = s.dns;
  const q = d.server.queries;
  const out = [
    `mxsentry ${s.version}, up ${duration(s.uptimeSec)}`,
    `DNS        ${q.udp + q.tcp} queries (udp ${q.udp}, tcp ${q.tcp}); refused by allow ${d.server.refused}, formerr ${d.server.formerr}, overloaded ${d.server.overloaded}, dropped ${d.server.dropped}`,
    `           answers by source: ${pairs(d.server.sources as unknown as Record<string, number>)}`,
    `           rcodes: ${pairs(d.server.rcodes)}`,
    `           SERVFAIL causes (DNS clients): ${pairs(d.resolver.failures)}`,
    `           SERVFAIL causes (the policy service's own lookups: DNS lists, HELO): ${pairs(d.resolver.inProcessFailures ?? {})}`,
    `Cache      RRsets ${d.cache.entries} entries, ${mib(d.cache.bytes)} of ${mib(d.cache.maxBytes)}, hit ratio ${pct(d.cache.hitRatio)}, stale served ${d.resolver.staleServed}`,
    `           packets ${d.packetCache.entries} answers, ${mib(d.packetCache.bytes)} of ${mib(d.packetCache.maxBytes)}, hit ratio ${pct(d.packetCache.hitRatio)}`,
    `Upstream   ${d.iterator.upstreamQueries} queries, ${d.iterator.upstreamTimeouts} unanswered (timeouts, network errors), ${d.iterator.tcpRetries} TCP retries, ${d.infra.hosts} servers known`,
  ];
  if (d.upstreamRtt) {
    out.push(`           RTT udp median ${histogramQuantile(d.upstreamRtt.udp, 0.5)}, p90 ${histogramQuantile(d.upstreamRtt.udp, 0.9)} (${d.upstreamRtt.udp.count} answers); tcp ${d.upstreamRtt.tcp.count} answers`);
  }
  const p = s.policy;
  out.push(`Policy     ${p.pipeline.decisions} decisions, ${p.server.requests} requests, ${p.server.connectionsOpen} connections open, budget exceeded ${p.pipeline.budgetExceeded}, check errors ${p.pipeline.checkErrors}`);
  const sv = p.server;
  // Postfix answers each of these with smtpd_policy_service_default_action, unchecked: shown once any happened.
  if (sv.connectionsRefused + sv.protocolErrors + sv.requestTimeouts + sv.internalErrors > 0) {
    out.push(`           connections refused ${sv.connectionsRefused} (policy-max-connections or shutdown), closed for protocol errors ${sv.protocolErrors}, unfinished requests ${sv.requestTimeouts}, failed decisions ${sv.internalErrors}`);
  }
  const nameWidth = Math.max(16, ...p.pipeline.byStep.map((c) => c.stepName.length));
  for (const c of p.pipeline.byStep) out.push(`           step ${String(c.step).padStart(2)} ${c.stepName.padEnd(nameWidth)} ${c.verdict.padEnd(16)} ${c.count}`);
  for (const l of p.dnsLists) out.push(`List       ${l.list} (${l.tier}): ${l.queries} queries, ${l.listed} listed, ${l.errors} error answers, ${l.failures ?? 0} failed lookups (servers SERVFAIL, REFUSED or unreachable), ${l.timeouts} timeouts, ${l.skipped ?? 0} skipped (not asked: suspended by its self test, or its first self test not done)`);
  if (p.greylist) out.push(`Greylist   ${pairs(p.greylist as unknown as Record<string, number>)}`);
  const c = s.store.counts;
  out.push(c
    ? `Store      ${s.store.healthy ? 'healthy' : `NOT HEALTHY${s.store.error ? ` (${s.store.error})` : ''}`}; ${c.triplets} triplets (deleted ones included until they expire), ${c.clients} client records (auto-whitelist counts), ${mib(c.usedBytes)} of ${mib(c.limitBytes)}`
    : `Store      ${s.store.healthy ? 'healthy' : 'NOT HEALTHY'}${s.store.error ? `: ${s.store.error}` : ''}`);
  if (s.store.dataFileProblem) out.push(`           WARNING: ${s.store.dataFileProblem}`);
  if (!s.replication.configured) out.push('Replication not configured');
  else if (s.replication.peers.length === 0) out.push('Replication configured, no peer reported');
  for (const r of s.replication.peers) {
    out.push(`Peer       ${r.peer}: ${r.connected === undefined ? '' : r.connected ? 'connected, ' : 'DISCONNECTED, '}lag ${r.lagRecords ?? '?'} changes${r.lagSec !== undefined ? `, ${r.lagSec} s` : ''}`);
  }
  return `${out.join('\n')}\n`;
}

/** Whether an error, or one of its causes (a placed ConfigError wraps the file's error), is EACCES or EPERM. */
function isPermissionDenied(err: unknown): boolean {
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') return true;
  }
  return false;
}
