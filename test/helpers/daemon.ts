// Runs the built daemon the way a user does (`node bin/mxsentry serve ...` as a child process) for the
// end-to-end tests, plus a fake DNS tree whose servers all listen on ONE port, as the daemon's
// --upstream-port needs. Used by test/e2e/. It never binds or sends outside 127.0.0.0/8, never leaves a
// child running (teardown and a process 'exit' hook kill it) and removes every temp dir it made.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeAuthority, type FakeQuery } from './fake-authority.js';
import { canonical, parseFakeZone, type FakeZone } from './fake-zone.js';
import type { HierarchySpec } from './fake-hierarchy.js';

/** bin/mxsentry of this checkout (this file runs from dist/test/helpers/). */
export const MXSENTRY_BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../../bin/mxsentry');

/** The address the daemons under test listen on. */
export const DAEMON_ADDRESS = '127.0.0.1';

const DEFAULT_READY_TIMEOUT_MS = 10_000;
const DEFAULT_STOP_TIMEOUT_MS = 8_000;
const PROBE_TIMEOUT_MS = 250;
const PORT_ATTEMPTS = 10;

// Safety net: the runner ends with process.exit(), so a test that failed before its teardown must
// not leave a daemon or a temp dir behind.
const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
process.on('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * A random port in 20000..32767, below Linux's ephemeral range (32768..60999): a port picked there
 * could be taken as the local port of some outgoing connection (a node dialling its peers, a test's
 * client) between the check and the bind. Callers retry on EADDRINUSE.
 */
function randomPort(): number {
  return randomInt(20_000, 32_768);
}

/** Whether UDP and TCP are both free on address:port right now. */
async function isPortFree(address: string, port: number): Promise<boolean> {
  const udp = dgram.createSocket('udp4');
  const udpOk = await new Promise<boolean>((done) => {
    udp.once('error', () => done(false));
    udp.bind({ address, port, exclusive: true }, () => done(true));
  });
  if (!udpOk) {
    udp.close();
    return false;
  }
  const server = net.createServer();
  const tcpOk = await new Promise<boolean>((done) => {
    server.once('error', () => done(false));
    server.listen({ host: address, port, exclusive: true }, () => done(true));
  });
  await new Promise<void>((done) => udp.close(() => done()));
  if (tcpOk) await new Promise<void>((done) => server.close(() => done()));
  return tcpOk;
}

/**
 * Ports handed out lately by freeLoopbackPort: a caller that asks for two before binding either
 * (a daemon's DNS and policy listeners, a cluster's nodes) must not get the same one twice.
 */
const recentPorts: number[] = [];
const RECENT_PORTS = 256;

/** A port free for both UDP and TCP on a loopback address (free when checked; a race stays possible). */
export async function freeLoopbackPort(address = DAEMON_ADDRESS): Promise<number> {
  for (let i = 0; i < PORT_ATTEMPTS; i++) {
    const port = randomPort();
    if (recentPorts.includes(port) || !(await isPortFree(address, port))) continue;
    recentPorts.push(port);
    if (recentPorts.length > RECENT_PORTS) recentPorts.shift();
    return port;
  }
  throw new Error(`no free port on ${address} after ${PORT_ATTEMPTS} attempts`);
}

/** A fake tree whose servers all use the same port (see startSharedPortTree). */
export interface SharedPortTree {
  /** The one port every server listens on (UDP and TCP): the daemon's --upstream-port. */
  readonly port: number;
  /** named.root-style text for the daemon's --root-hints file. */
  readonly rootHints: string;
  readonly servers: readonly FakeAuthority[];
  /** The server bound to an address; throws if there is none. */
  server(address: string): FakeAuthority;
  /** All queries of all servers, with the server address, in arrival order. */
  allQueries(): Array<FakeQuery & { server: string }>;
  clearQueries(): void;
  stop(): Promise<void>;
}

/**
 * Starts a HierarchySpec (e.g. standardTree()) with every server on the same random port, so one
 * --upstream-port reaches them all (each binds its own 127.53.x.y). startHierarchy() cannot do this:
 * its HierarchyServerSpec has no port, so its servers get a kernel port each.
 */
export async function startSharedPortTree(spec: HierarchySpec): Promise<SharedPortTree> {
  const zones = new Map<string, FakeZone>();
  for (const [origin, z] of Object.entries(spec.zones)) zones.set(canonical(origin), { origin: canonical(origin), records: z.records });
  const root = zones.get('.');
  if (!root) throw new Error('shared-port tree: the root zone "." is required');
  const rootNs = parseFakeZone(root).filter((r) => r.key === '.' && r.type === 'NS').map((r) => r.data as string);

  let lastError: unknown;
  for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
    const port = randomPort();
    const servers = spec.servers.map((s) => {
      const served = s.zones.map((origin) => {
        const z = zones.get(canonical(origin));
        if (!z) throw new Error(`shared-port tree: server ${s.address} serves unknown zone ${origin}`);
        return z;
      });
      return new FakeAuthority({ address: s.address, zones: served, behaviour: s.behaviour, rootNs, port });
    });
    try {
      await Promise.all(servers.map((s) => s.start()));
    } catch (err) {
      await Promise.all(servers.map((s) => s.stop()));
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      lastError = err;
      continue;
    }
    const byAddress = new Map(servers.map((s) => [s.address, s]));
    return {
      port,
      rootHints: rootHintsText([...zones.values()], rootNs),
      servers,
      server(address: string): FakeAuthority {
        const s = byAddress.get(address);
        if (!s) throw new Error(`shared-port tree: no server at ${address}`);
        return s;
      },
      allQueries() {
        return servers.flatMap((s) => s.queries.map((q) => ({ ...q, server: s.address }))).sort((a, b) => a.at - b.at);
      },
      clearQueries() {
        for (const s of servers) s.clearQueries();
      },
      async stop() {
        await Promise.all(servers.map((s) => s.stop()));
      },
    };
  }
  throw new Error(`shared-port tree: no port free on every server address after ${PORT_ATTEMPTS} attempts`, { cause: lastError });
}

/** named.root-style hints: '.' NS lines, then the A/AAAA records of each root server name. */
function rootHintsText(zones: FakeZone[], rootNs: string[]): string {
  const records = zones.flatMap((z) => parseFakeZone(z));
  const lines = ['; root hints of a shared-port fake tree (test/helpers/daemon.ts)'];
  const seen = new Set<string>();
  for (const ns of rootNs) {
    lines.push(`. 3600000 IN NS ${ns}`);
    for (const r of records) {
      if (r.key !== canonical(ns) || (r.type !== 'A' && r.type !== 'AAAA')) continue;
      const line = `${ns} 3600000 IN ${r.type} ${r.data as string}`;
      if (!seen.has(line)) lines.push(line);
      seen.add(line);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** One line of the daemon's pino JSON log. */
export type DaemonLogLine = Record<string, unknown> & { level?: string; msg?: string };

/** How a daemon process ended. */
export interface DaemonExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnDaemonOptions {
  /** The fake tree's port (--upstream-port). */
  upstreamPort: number;
  /** Root hints text, written to a temp file for --root-hints. */
  rootHints: string;
  /** Further `serve` flags, e.g. ['--allow', '127.0.0.2/32']. */
  args?: string[];
  /** Listening port on 127.0.0.1; default a free random one. */
  listenPort?: number;
  /** Bound on the wait until it answers a DNS query; default 10 s. */
  readyTimeoutMs?: number;
}

/** A daemon child process answering DNS on DAEMON_ADDRESS:port. */
export interface RunningDaemon {
  readonly port: number;
  readonly pid: number;
  /** The temp dir holding the data dir and the root hints file (removed by dispose()). */
  readonly dir: string;
  /** stdout lines parsed as JSON, so far. */
  logLines(): DaemonLogLine[];
  /** stdout lines that were not JSON (a daemon must print none). */
  nonJsonLines(): string[];
  stderr(): string;
  /** null while the process runs. */
  exitInfo(): DaemonExit | null;
  /**
   * Sends SIGTERM and waits (bounded) for the exit. Throws unless it exits with code 0: a clean
   * shutdown is part of every test that uses a daemon. Kills it with SIGKILL on timeout.
   */
  stop(timeoutMs?: number): Promise<DaemonExit>;
  /** Teardown for finally blocks and after hooks: SIGKILL if still running, remove the temp dir. Idempotent. */
  dispose(): Promise<void>;
}

/** A `serve` run that is expected to end by itself (start-up failures). */
export interface DaemonRunResult extends DaemonExit {
  stdout: string;
  stderr: string;
}

/** The flags every e2e daemon gets; tests add theirs after these. */
function baseArgs(port: number, upstreamPort: number, hintsFile: string, dataDir: string): string[] {
  return [
    '--dns-listen', `${DAEMON_ADDRESS}:${port}`, '--root-hints', hintsFile, '--query-loopback',
    '--upstream-port', String(upstreamPort), '--data-dir', dataDir, '--log-level', 'info',
  ];
}

/**
 * Starts `node bin/mxsentry serve` with the e2e flags and waits until it answers a DNS query
 * (a 'localhost. A' probe, answered locally; any response counts, even REFUSED). Throws with its
 * stderr when it exits or does not answer in time; the child is killed and the temp dir removed then.
 * With no listenPort, a lost race for the random port is retried with another one.
 */
export async function spawnDaemon(opts: SpawnDaemonOptions): Promise<RunningDaemon> {
  const attempts = opts.listenPort === undefined ? 3 : 1;
  for (let attempt = 1; ; attempt++) {
    const port = opts.listenPort ?? (await freeLoopbackPort());
    // Every daemon also runs the policy service: give it a free port unless the test chose one.
    const policyArgs = (opts.args ?? []).includes('--policy-listen') ? [] : ['--policy-listen', `${DAEMON_ADDRESS}:${await freeLoopbackPort()}`];
    const daemon = launch(port, { ...opts, args: [...policyArgs, ...(opts.args ?? [])] });
    try {
      await waitUntilAnswering(daemon, opts.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS);
      return daemon;
    } catch (err) {
      await daemon.dispose();
      if (attempt < attempts && /in use/i.test(daemon.stderr())) continue;
      throw err;
    }
  }
}

function launch(port: number, opts: SpawnDaemonOptions): RunningDaemon {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-e2e-'));
  liveDirs.add(dir);
  const hintsFile = join(dir, 'root.hints');
  writeFileSync(hintsFile, opts.rootHints);
  const args = [...baseArgs(port, opts.upstreamPort, hintsFile, join(dir, 'data')), ...(opts.args ?? [])];
  const child = spawn(process.execPath, [MXSENTRY_BIN, 'serve', ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  liveChildren.add(child);

  const lines: DaemonLogLine[] = [];
  const junk: string[] = [];
  let partial = '';
  let stderr = '';
  let exit: DaemonExit | null = null;
  const exited = new Promise<DaemonExit>((done) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      liveChildren.delete(child);
      done(exit);
    });
  });
  const takeLine = (line: string): void => {
    if (line.trim() === '') return;
    try {
      lines.push(JSON.parse(line) as DaemonLogLine);
    } catch {
      junk.push(line);
    }
  };
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    partial += chunk;
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const p of parts) takeLine(p);
  });
  child.stdout?.on('end', () => {
    takeLine(partial);
    partial = '';
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
  });
  // Output streams end after 'exit'; wait for 'close' so the last log lines are in.
  const closed = new Promise<void>((done) => child.once('close', () => done()));
  if (child.pid === undefined) throw new Error(`could not start ${MXSENTRY_BIN}`);
  const pid = child.pid;

  const waitExit = async (timeoutMs: number): Promise<DaemonExit | null> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((done) => {
      timer = setTimeout(() => done(null), timeoutMs);
    });
    const ended = exited.then(async (e) => {
      await closed;
      return e;
    });
    const result = await Promise.race([ended, timeout]);
    clearTimeout(timer);
    return result;
  };
  let disposed = false;

  return {
    port,
    pid,
    dir,
    logLines: () => [...lines],
    nonJsonLines: () => [...junk],
    stderr: () => stderr,
    exitInfo: () => exit,
    async stop(timeoutMs = DEFAULT_STOP_TIMEOUT_MS) {
      if (exit === null) child.kill('SIGTERM');
      const result = await waitExit(timeoutMs);
      if (result === null) {
        child.kill('SIGKILL');
        await waitExit(2000);
        throw new Error(`daemon pid ${pid} did not exit within ${timeoutMs} ms of SIGTERM; killed. stderr: ${stderr.slice(-500)}`);
      }
      if (result.code !== 0) {
        throw new Error(`daemon pid ${pid} exited with code ${String(result.code)} signal ${String(result.signal)} after SIGTERM; stderr: ${stderr.slice(-500)}`);
      }
      return result;
    },
    async dispose() {
      if (disposed) return;
      disposed = true;
      if (exit === null) {
        child.kill('SIGKILL');
        if ((await waitExit(3000)) === null) throw new Error(`daemon pid ${pid} survived SIGKILL for 3 s`);
      }
      rmSync(dir, { recursive: true, force: true });
      liveDirs.delete(dir);
    },
  };
}

/**
 * Polls with 'localhost. A' over UDP until any response arrives, then waits for the 'mxsentry started'
 * log line (the daemon coalesces log lines for up to a few ms, so start-up lines may trail the
 * first answer); bounded by timeoutMs.
 */
async function waitUntilAnswering(daemon: RunningDaemon, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let answering = false;
  while (Date.now() < deadline) {
    const exit = daemon.exitInfo();
    if (exit) throw new Error(`daemon exited during start-up (code ${String(exit.code)}, signal ${String(exit.signal)}): ${daemon.stderr().trim()}`);
    answering ||= await probe(daemon.port);
    if (answering && daemon.logLines().some((l) => l.msg === 'mxsentry started')) return;
    await new Promise((done) => setTimeout(done, answering ? 10 : 50));
  }
  const what = answering ? "did not log 'mxsentry started'" : 'did not answer';
  throw new Error(`daemon on ${DAEMON_ADDRESS}:${daemon.port} ${what} within ${timeoutMs} ms; stderr: ${daemon.stderr().trim()}`);
}

/** One UDP query for 'localhost. A'; true when a response with our ID comes back in time. */
function probe(port: number): Promise<boolean> {
  const id = randomInt(0, 0x10000);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD
  header.writeUInt16BE(1, 4); // QDCOUNT
  const question = Buffer.from([9, ...Buffer.from('localhost'), 0, 0, 1, 0, 1]); // localhost. A IN
  const query = Buffer.concat([header, question]);
  const socket = dgram.createSocket('udp4');
  return new Promise<boolean>((done) => {
    let finished = false;
    const finish = (ok: boolean): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.close();
      done(ok);
    };
    const timer = setTimeout(() => finish(false), PROBE_TIMEOUT_MS);
    socket.on('error', () => finish(false)); // ICMP port unreachable before the daemon binds
    socket.on('message', (msg) => {
      if (msg.length >= 12 && msg.readUInt16BE(0) === id && (msg[2]! & 0x80) !== 0) finish(true);
    });
    socket.connect(port, DAEMON_ADDRESS, () => socket.send(query));
  });
}

/**
 * Runs `node bin/mxsentry serve ARGS` that is expected to exit on its own (a bind or config
 * failure) and returns its exit and output; SIGKILL and an error after timeoutMs.
 */
export async function runDaemonToExit(args: string[], timeoutMs = DEFAULT_READY_TIMEOUT_MS): Promise<DaemonRunResult> {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-e2e-'));
  liveDirs.add(dir);
  const child = spawn(process.execPath, [MXSENTRY_BIN, 'serve', ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  liveChildren.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  try {
    const result = await new Promise<DaemonExit | null>((done) => {
      const timer = setTimeout(() => done(null), timeoutMs);
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        done({ code, signal });
      });
    });
    if (result === null) {
      child.kill('SIGKILL');
      throw new Error(`mxsentry serve ${args.join(' ')} was still running after ${timeoutMs} ms (killed); stderr: ${stderr}`);
    }
    return { ...result, stdout, stderr };
  } finally {
    liveChildren.delete(child);
    rmSync(dir, { recursive: true, force: true });
    liveDirs.delete(dir);
  }
}

/** Writes a file into a fresh temp dir (config files for runDaemonToExit); the caller removes the dir. */
export function writeTempFile(name: string, text: string): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-e2e-'));
  liveDirs.add(dir);
  const file = join(dir, name);
  writeFileSync(file, text);
  return { dir, file };
}

/** Removes a temp dir made by writeTempFile. */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  liveDirs.delete(dir);
}
