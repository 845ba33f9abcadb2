// End-to-end: Prometheus' own checker (`promtool check metrics`, Debian package prometheus) on the
// /metrics of two built daemons that replicate to each other, after DNS queries, DNS list lookups and
// greylisting, so the RTT histogram and the per-list and per-peer families have samples. Any error or
// lint it reports fails the test, as does a counter that goes down between two scrapes. Without
// promtool: a SKIP line (a failure under CI=true). Loopback only; everything started is stopped.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import {
  DAEMON_ADDRESS,
  freeLoopbackPort,
  removeTempDir,
  spawnDaemon,
  startSharedPortTree,
  writeTempFile,
  type RunningDaemon,
  type SharedPortTree,
} from '../helpers/daemon.js';
import { standardTree } from '../helpers/fake-hierarchy.js';
import { requirePeer } from '../helpers/peers.js';
import { parseExposition } from '../helpers/prometheus.js';
import { PolicyClient } from '../helpers/replication-cluster.js';
import { buildQuery, tcpQuery, udpQuery } from '../dns/server/dns-test-client.js';

const s = suite('e2e/metrics-promtool');
const TEST_NAME = 'promtool check metrics';
const KEY = '5a'.repeat(32);
const PROMTOOL_TIMEOUT_MS = 10_000;

function scrape(port: number): Promise<{ status: number; contentType: string; body: string }> {
  return new Promise((done, fail) => {
    const req = http.get({ host: DAEMON_ADDRESS, port, path: '/metrics', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => done({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type']), body }));
    });
    req.setTimeout(5000, () => req.destroy(new Error('metrics request timed out')));
    req.on('error', fail);
  });
}

/** Feeds `text` to `promtool check metrics`; its exit code and everything it printed. */
function promtoolCheck(promtool: string, text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((done, fail) => {
    const child = spawn(promtool, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), PROMTOOL_TIMEOUT_MS);
    child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, output });
    });
    child.stdin.end(text);
  });
}

async function assertPromtoolClean(promtool: string, what: string, text: string): Promise<void> {
  const r = await promtoolCheck(promtool, text);
  assert.is(r.output.trim(), '', `promtool on ${what} reported:\n${r.output}`);
  assert.is(r.code, 0, `promtool on ${what} exited ${String(r.code)}`);
}

async function waitFor(what: string, cond: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`not within ${timeoutMs} ms: ${what}`);
}

/** Counters and histogram series of `before` that are missing or lower in `after`. */
function wentDown(before: string, after: string): string[] {
  const types = new Map<string, string>();
  for (const m of before.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(m[1]!, m[2]!);
  const a = parseExposition(before);
  const b = parseExposition(after);
  const out: string[] = [];
  for (const [series, value] of a) {
    const name = series.replace(/\{.*$/, '');
    const type = types.get(name) ?? types.get(name.replace(/_(bucket|sum|count)$/, ''));
    if (type !== 'counter' && type !== 'histogram') continue;
    const later = b.get(series);
    if (later === undefined || later < value) out.push(`${series} ${value} -> ${String(later)}`);
  }
  return out;
}

async function traffic(dnsPort: number, policyPort: number, tag: string): Promise<void> {
  for (const [name, type] of [['www.example.com', 'A'], ['nx.example.com', 'A'], ['example.com', 'MX'], ['www.example.com', 'A']] as const) {
    assert.ok(await udpQuery(dnsPort, buildQuery(name, type)), `an answer to ${name} ${type}`);
  }
  await tcpQuery(dnsPort, buildQuery('mail.example.com', 'A'));
  const policy = await PolicyClient.connect(policyPort);
  try {
    assert.match(await policy.request('127.0.0.2', `a-${tag}@example.org`, 'b@example.com'), /^554 /);
    assert.match(await policy.request('192.0.2.1', `a-${tag}@example.org`, 'b@example.com'), /^DEFER_IF_PERMIT /);
  } finally {
    policy.close();
  }
}

s(`${TEST_NAME}: two replicating daemons, two scrapes with a reload between them, nothing reported`, async () => {
  const promtool = requirePeer('promtool', TEST_NAME);
  if (!promtool) return;
  let tree: SharedPortTree | undefined;
  const daemons: RunningDaemon[] = [];
  // mx-a reads its link timeout from a file, so a reload can change it (which replaces its link).
  const config = writeTempFile('mxsentry.conf', 'replication-timeout: 15\n');
  try {
    tree = await startSharedPortTree(standardTree());
    const nodes: Array<{ name: string; metrics: number; policy: number; repl: number }> = [];
    for (const name of ['mx-a', 'mx-b']) nodes.push({ name, metrics: await freeLoopbackPort(), policy: await freeLoopbackPort(), repl: await freeLoopbackPort() });
    for (const n of nodes) {
      const other = nodes.find((o) => o !== n)!;
      daemons.push(await spawnDaemon({
        upstreamPort: tree.port,
        rootHints: tree.rootHints,
        args: [
          '--metrics-listen', `${DAEMON_ADDRESS}:${n.metrics}`, '--policy-listen', `${DAEMON_ADDRESS}:${n.policy}`,
          '--dnsbl', 'dnsbl.example.net=127.0.0.[2..11]', '--dnswl', 'dnsbl.example.net=127.0.0.4',
          '--node-name', n.name, '--replication-listen', `${DAEMON_ADDRESS}:${n.repl}`, '--replication-key', KEY,
          '--peer', `${other.name}=${DAEMON_ADDRESS}:${other.repl}`,
          ...(n.name === 'mx-a' ? ['--config', config.file] : []),
        ],
      }));
    }
    const [a, b] = [nodes[0]!, nodes[1]!];
    await traffic(daemons[0]!.port, a.policy, '1');
    // The greylist changes of mx-a acknowledged by mx-b: the per-peer series have samples.
    await waitFor('mx-b received mx-a\'s changes', async () => {
      const m = parseExposition((await scrape(b.metrics)).body);
      return (m.get('mxsentry_replication_received_entries_total{peer="mx-a"}') ?? 0) > 0;
    });
    await waitFor('mx-a sees no lag towards mx-b', async () => {
      const m = parseExposition((await scrape(a.metrics)).body);
      return m.get('mxsentry_replication_lag_records{peer="mx-b"}') === 0 && m.get('mxsentry_replication_peer_connected{peer="mx-b"}') === 1;
    });

    const first = await scrape(a.metrics);
    assert.is(first.status, 200);
    assert.is(first.contentType, 'text/plain; version=0.0.4; charset=utf-8');
    const m = parseExposition(first.body);
    assert.ok((m.get('mxsentry_upstream_rtt_seconds_count{transport="udp"}') ?? 0) > 0, 'the RTT histogram has observations');
    assert.ok((m.get('mxsentry_dnslist_listed_total{tier="block",list="dnsbl.example.net=127.0.0.[2..11]"}') ?? 0) > 0, 'a DNSBL listing counted');
    assert.ok((m.get('mxsentry_replication_sent_entries_total{peer="mx-b"}') ?? 0) > 0, 'entries sent to the peer');
    await assertPromtoolClean(promtool, 'mx-a, first scrape', first.body);
    await assertPromtoolClean(promtool, 'mx-b', (await scrape(b.metrics)).body);

    writeFileSync(config.file, 'replication-timeout: 20\n');
    process.kill(daemons[0]!.pid, 'SIGHUP');
    await waitFor('the reload applied', async () => daemons[0]!.logLines().some((l) => l.msg === 'configuration reloaded'));
    await waitFor('mx-a\'s new link to mx-b up', async () => parseExposition((await scrape(a.metrics)).body).get('mxsentry_replication_peer_connected{peer="mx-b"}') === 1);
    await traffic(daemons[0]!.port, a.policy, '2');
    const second = await scrape(a.metrics);
    await assertPromtoolClean(promtool, 'mx-a, second scrape', second.body);
    assert.equal(wentDown(first.body, second.body), [], 'counters and histogram series never go down, across a reload too');

    for (const d of daemons) await d.stop();
  } finally {
    for (const d of daemons) await d.dispose();
    await tree?.stop();
    removeTempDir(config.dir);
  }
});

s.run();
