// A cluster of real `mxsentry serve` processes on loopback for the replication e2e test and bench:
// each node keeps its data dir across kill -9 and restart, links can be routed through an in-test
// TCP proxy that blackholes them (a partition), and a small Postfix policy client sends requests.
// Never binds or sends outside 127.0.0.0/8; stop() kills every child it started and removes its dirs.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LmdbGreylistStore } from '../../src/store/lmdb-greylist-store.js';
import { canonicalRecord } from '../../src/store/replication/bucket-digest.js';
import { systemClock } from '../../src/util/clock.js';
import { createSilentLogger } from '../../src/util/logger.js';
import { freeLoopbackPort, MXSENTRY_BIN } from './daemon.js';

const ROOT_HINTS = '. 3600000 IN NS a.root.test.\na.root.test. 3600000 IN A 127.53.0.1\n';
const READY_TIMEOUT_MS = 10_000;

// Safety net for a run that ends before its teardown: no child and no temp dir survives the process.
const live = new Set<ChildProcess>();
const liveDirs = new Set<string>();
process.on('exit', () => {
  for (const c of live) c.kill('SIGKILL');
  for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
});

/** A TCP relay to one node's replication port that can blackhole traffic (a partition) and heal. */
export class LinkProxy {
  private server: net.Server | undefined;
  private readonly pairs = new Set<[net.Socket, net.Socket]>();
  private blackholed = false;
  port = 0;

  constructor(private readonly targetPort: () => number) {}

  async start(): Promise<void> {
    this.server = net.createServer((client) => {
      const upstream = net.connect({ host: '127.0.0.1', port: this.targetPort() });
      const pair: [net.Socket, net.Socket] = [client, upstream];
      this.pairs.add(pair);
      const relay = (from: net.Socket, to: net.Socket): void => {
        // Blackholed: bytes are swallowed both ways while the sockets stay open, like a dead route.
        from.on('data', (d) => {
          if (!this.blackholed) to.write(d);
        });
      };
      relay(client, upstream);
      relay(upstream, client);
      const end = (): void => {
        client.destroy();
        upstream.destroy();
        this.pairs.delete(pair);
      };
      for (const s of pair) {
        s.on('error', end);
        s.on('close', end);
      }
    });
    await new Promise<void>((resolve) => this.server!.listen({ host: '127.0.0.1', port: 0 }, () => resolve()));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  /** Start or stop dropping every byte on this link. */
  setBlackholed(on: boolean): void {
    this.blackholed = on;
  }

  async stop(): Promise<void> {
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/** One node: its ports and data dir stay fixed across restarts. */
export class ClusterNode {
  proc: ChildProcess | undefined;
  logs: Array<Record<string, unknown>> = [];
  stderr = '';
  constructor(
    readonly name: string,
    readonly dir: string,
    readonly dnsPort: number,
    readonly policyPort: number,
    readonly replPort: number,
    public args: string[],
    readonly replicating = true,
    /** Node flags before the script (e.g. --cpu-prof for a profile of each node). */
    readonly nodeArgs: string[] = [],
  ) {}

  get dataDir(): string {
    return join(this.dir, 'data');
  }

  /** Starts the process and waits until the policy port and the replication port accept connections. */
  async start(): Promise<void> {
    const child = spawn(process.execPath, [...this.nodeArgs, MXSENTRY_BIN, 'serve', ...this.args], { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = child;
    live.add(child);
    let partial = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      partial += chunk;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        if (l.trim() === '') continue;
        try {
          this.logs.push(JSON.parse(l) as Record<string, unknown>);
        } catch {
          this.logs.push({ msg: l, nonJson: true });
        }
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (this.stderr += c));
    child.once('exit', () => live.delete(child));
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (const port of this.replicating ? [this.policyPort, this.replPort] : [this.policyPort]) {
      for (;;) {
        if (child.exitCode !== null) throw new Error(`${this.name} exited during start-up: ${this.stderr}`);
        if (await canConnect(port)) break;
        if (Date.now() > deadline) throw new Error(`${this.name} not ready within ${READY_TIMEOUT_MS} ms: ${this.stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** kill -9 and wait for the exit. */
  async kill9(): Promise<void> {
    const child = this.proc;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  }

  /** SIGTERM and wait (bounded) for a clean exit; returns the exit code. */
  async stop(timeoutMs = 8000): Promise<number | null> {
    const child = this.proc;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const code = await exited;
    clearTimeout(timer);
    return code;
  }

  /** Sorted canonical dump of the node's greylist (triplets, then clients), read from its LMDB. */
  async dump(): Promise<{ triplets: Map<string, string>; clients: Map<string, string>; digest: string }> {
    const store = await LmdbGreylistStore.open({ dataDir: this.dataDir, clock: systemClock, logger: createSilentLogger() });
    try {
      const t = await store.listTriplets({ limit: 100_000 });
      const c = await store.listClients({ limit: 100_000 });
      const triplets = new Map(t.map((r) => [r.key, canonicalRecord('triplet', r.record)]));
      const clients = new Map(c.map((r) => [r.key, canonicalRecord('client', r.record)]));
      return { triplets, clients, digest: JSON.stringify([[...triplets], [...clients]]) };
    } finally {
      await store.close();
    }
  }
}

async function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Options of startCluster. */
export interface ClusterOptions {
  names: string[];
  key: string;
  /** Route every node-to-node link through its own LinkProxy (for partitions). */
  proxies?: boolean;
  /** Extra `serve` flags for every node. */
  args?: string[];
  /** Daemon log level (default info; the bench uses warn: one line per decision costs CPU). */
  logLevel?: string;
  /** false: independent nodes without peers or listener (replication off), for comparisons. */
  replication?: boolean;
  /** Node flags for every node's process (before the script), e.g. ['--cpu-prof', '--cpu-prof-dir=DIR']. */
  nodeArgs?: string[];
}

/** A running cluster; `proxy(from, to)` is the link from one node to another when proxies are on. */
export interface Cluster {
  nodes: ClusterNode[];
  proxy(from: string, to: string): LinkProxy;
  node(name: string): ClusterNode;
  stop(): Promise<void>;
}

/** Starts every node (full mesh of peers) and waits until all are ready. */
export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const base = mkdtempSync(join(tmpdir(), 'mxsentry-cluster-'));
  liveDirs.add(base);
  writeFileSync(join(base, 'root.hints'), ROOT_HINTS);
  const ports = new Set<number>();
  const port = async (): Promise<number> => {
    for (;;) {
      const p = await freeLoopbackPort();
      if (!ports.has(p)) {
        ports.add(p);
        return p;
      }
    }
  };
  // The proxies listen first (on port 0) and find their target node by name when a link connects:
  // picked-but-unbound node ports cannot then be handed to a proxy by the kernel (EADDRINUSE at start).
  const byName = new Map<string, ClusterNode>();
  const proxies = new Map<string, LinkProxy>();
  for (const from of o.names) {
    for (const to of o.names) {
      if (from === to || !o.proxies) continue;
      const p = new LinkProxy(() => byName.get(to)!.replPort);
      await p.start();
      proxies.set(`${from}>${to}`, p);
    }
  }
  const nodes: ClusterNode[] = [];
  for (const name of o.names) {
    const dir = mkdtempSync(join(base, `${name}-`));
    const node = new ClusterNode(name, dir, await port(), await port(), await port(), [], o.replication !== false, o.nodeArgs);
    nodes.push(node);
    byName.set(name, node);
  }
  for (const n of nodes) {
    const common = [
      '--dns-listen', `127.0.0.1:${n.dnsPort}`,
      '--policy-listen', `127.0.0.1:${n.policyPort}`,
      '--data-dir', n.dataDir,
      '--root-hints', join(base, 'root.hints'),
      '--log-level', o.logLevel ?? 'info',
    ];
    if (o.replication === false) {
      n.args = [...common, ...(o.args ?? [])];
      continue;
    }
    const peers = nodes
      .filter((p) => p !== n)
      .flatMap((p) => ['--peer', `${p.name}=127.0.0.1:${o.proxies ? proxies.get(`${n.name}>${p.name}`)!.port : p.replPort}`]);
    n.args = [
      ...common,
      '--node-name', n.name,
      '--replication-listen', `127.0.0.1:${n.replPort}`,
      '--replication-key', o.key,
      ...peers,
      ...(o.args ?? []),
    ];
  }
  const cluster: Cluster = {
    nodes,
    proxy: (from, to) => {
      const p = proxies.get(`${from}>${to}`);
      if (!p) throw new Error(`no proxy ${from}>${to}`);
      return p;
    },
    node: (name) => {
      const n = nodes.find((x) => x.name === name);
      if (!n) throw new Error(`no node ${name}`);
      return n;
    },
    async stop() {
      for (const n of nodes) {
        if (n.proc && n.proc.exitCode === null && n.proc.signalCode === null) n.proc.kill('SIGKILL');
      }
      await Promise.all(nodes.map((n) => (n.proc && n.proc.exitCode === null && n.proc.signalCode === null ? new Promise((r) => n.proc!.once('exit', r)) : undefined)));
      for (const p of proxies.values()) await p.stop();
      rmSync(base, { recursive: true, force: true });
      liveDirs.delete(base);
    },
  };
  try {
    await Promise.all(nodes.map((n) => n.start()));
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

/** A persistent Postfix policy connection: one request at a time, answers in order. */
export class PolicyClient {
  private readonly socket: net.Socket;
  private buffer = '';
  private readonly waiting: Array<{ resolve: (action: string) => void; reject: (e: Error) => void }> = [];
  private failure: Error | undefined;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      for (;;) {
        const end = this.buffer.indexOf('\n\n');
        if (end < 0) break;
        const block = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        const action = /^action=(.*)$/m.exec(block)?.[1] ?? '';
        this.waiting.shift()?.resolve(action);
      }
    });
    const fail = (err: Error): void => {
      this.failure ??= err;
      for (const w of this.waiting.splice(0)) w.reject(err);
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('policy connection closed')));
  }

  static connect(port: number): Promise<PolicyClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => resolve(new PolicyClient(s)));
      s.once('error', reject);
    });
  }

  /** Sends one RCPT-stage request and resolves with the action. */
  request(clientAddress: string, sender: string, recipient: string): Promise<string> {
    if (this.failure) return Promise.reject(this.failure);
    const lines = [
      'request=smtpd_access_policy',
      'protocol_state=RCPT',
      'protocol_name=ESMTP',
      `client_address=${clientAddress}`,
      'client_name=unknown',
      'reverse_client_name=unknown',
      'helo_name=mail.example.org',
      `sender=${sender}`,
      `recipient=${recipient}`,
      'instance=e2e',
      '',
      '',
    ];
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.socket.write(lines.join('\n'));
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
