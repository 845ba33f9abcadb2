// End to end: three real mxsentry processes on loopback, each with its own data dir, replicating
// their greylists over TLS-PSK. Random triplets go to random nodes through the Postfix policy
// protocol; after each fault (kill -9 mid-stream and restart, a partition through an in-test TCP
// proxy, a peer with the wrong key) every node must hold the same greylist and every acknowledged
// write. Also the seed's scenario: greylisted at mx1, accepted at mx2 after the delay.
import { execFile } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { promisify } from 'node:util';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { tripletKey } from '../../src/policy/greylist.js';
import { MXSENTRY_BIN } from '../helpers/daemon.js';
import { PolicyClient, startCluster, type Cluster, type ClusterNode } from '../helpers/replication-cluster.js';
import { loggedHook } from '../helpers/hook-errors.js';

const run = promisify(execFile);
const s = suite('e2e/replication');

let cluster: Cluster | undefined;
let key = '';
/** Triplet keys whose request was answered (the write was committed at some node). */
const acked = new Set<string>();

function letters(n: number): string {
  return Array.from({ length: n }, () => String.fromCharCode(97 + randomInt(26))).join('');
}

/** Sends `count` random triplets, each to a random node of `targets`; records the acknowledged ones. */
async function sendRandom(targets: ClusterNode[], count: number, onEach?: (i: number) => Promise<void> | void): Promise<{ ok: number; failed: number }> {
  const clients = new Map<ClusterNode, PolicyClient>();
  let ok = 0;
  let failed = 0;
  try {
    for (let i = 0; i < count; i++) {
      await onEach?.(i);
      const node = targets[randomInt(targets.length)]!;
      const client = `198.51.${randomInt(100, 120)}.${randomInt(1, 250)}`;
      const sender = `${letters(8)}@sender.example`;
      const recipient = `${letters(6)}@rcpt.example`;
      try {
        let c = clients.get(node);
        if (!c) {
          c = await PolicyClient.connect(node.policyPort);
          clients.set(node, c);
        }
        const action = await c.request(client, sender, recipient);
        assert.match(action, /^DEFER_IF_PERMIT/, `first sight at ${node.name}`);
        acked.add(tripletKey(client, sender, recipient, { lookupByHost: false }));
        ok++;
      } catch (err) {
        if (err instanceof assert.Assertion) throw err;
        // The node is down (killed on purpose): that request was never acknowledged.
        clients.get(node)?.close();
        clients.delete(node);
        failed++;
      }
    }
  } finally {
    for (const c of clients.values()) c.close();
  }
  return { ok, failed };
}

/** Waits (bounded) until every node holds the same greylist and every acknowledged triplet. */
async function assertConverged(nodes: ClusterNode[], timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const dumps = await Promise.all(nodes.map((n) => n.dump()));
    const missing = [...acked].filter((k) => dumps.some((d) => !d.triplets.has(k)));
    const same = dumps.every((d) => d.digest === dumps[0]!.digest);
    if (same && missing.length === 0) return;
    last = `${missing.length} acknowledged triplets missing; sizes ${dumps.map((d) => d.triplets.size).join('/')}`;
    if (Date.now() > deadline) throw new Error(`no convergence within ${timeoutMs} ms: ${last}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

s.before(loggedHook(async () => {
  // The admin's way: `mxsentry peer keygen` prints the key and the command that saves it on every node.
  const { stdout } = await run(process.execPath, [MXSENTRY_BIN, 'peer', 'keygen', '--name', 'mx1', '--address', '127.0.0.1']);
  key = /echo ([0-9a-f]{64}) > /.exec(stdout)?.[1] ?? '';
  assert.match(key, /^[0-9a-f]{64}$/);
  assert.match(stdout, /^peer: mx1=127\.0\.0\.1:7410$/m);
  try {
    cluster = await startCluster({
      names: ['mx1', 'mx2', 'mx3'],
      key,
      proxies: true,
      args: ['--replication-timeout', '2', '--delay', '1'],
    });
  } catch (err) {
    // uvu reports a failing before hook only as "(0 / N)": say why.
    console.error(`e2e/replication: the cluster did not start: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    throw err;
  }
}));

s.after(async () => {
  await cluster?.stop();
});

s('random triplets sent to random nodes end up identical on every node', async () => {
  const r = await sendRandom(cluster!.nodes, 150);
  assert.is(r.ok, 150);
  await assertConverged(cluster!.nodes);
});

s('seed scenario: greylisted at mx1, the retry after the delay at mx2 is accepted', async () => {
  const mx1 = await PolicyClient.connect(cluster!.node('mx1').policyPort);
  const mx2 = await PolicyClient.connect(cluster!.node('mx2').policyPort);
  try {
    const triplet = ['203.0.113.9', 'newsletter@shop.example', 'user@rcpt.example'] as const;
    const startedMs = Date.now();
    assert.match(await mx1.request(...triplet), /^DEFER_IF_PERMIT/);
    const k = tripletKey(triplet[0], triplet[1], triplet[2], { lookupByHost: false });
    const deadline = Date.now() + 5000;
    while (!(await cluster!.node('mx2').dump()).triplets.has(k)) {
      if (Date.now() > deadline) throw new Error('triplet never reached mx2');
      await new Promise((r) => setTimeout(r, 50));
    }
    // The configured delay is 1 s; the retry comes after it, at the other MX.
    const waitMs = 1100 - (Date.now() - startedMs);
    if (waitMs > 0) await new Promise((r) => setTimeout(r, waitMs));
    const action = await mx2.request(...triplet);
    assert.ok(!/^DEFER/.test(action), `retry at mx2 answered ${action}`);
    assert.match(action, /^(DUNNO|PREPEND X-Greylist)/);
  } finally {
    mx1.close();
    mx2.close();
  }
});

s('kill -9 of a node mid-stream, then restart: nothing acknowledged is lost', async () => {
  const mx2 = cluster!.node('mx2');
  let restarted = false;
  const r = await sendRandom(cluster!.nodes, 240, async (i) => {
    if (i === 60) await mx2.kill9();
    if (i === 180 && !restarted) {
      restarted = true;
      await mx2.start();
    }
  });
  assert.ok(r.ok >= 150 && r.failed > 0, `acknowledged ${r.ok}, failed ${r.failed}`);
  await assertConverged(cluster!.nodes);
});

s('a partition of mx3 for a while, then healed: the greylists converge', async () => {
  const names = ['mx1', 'mx2'];
  const cut = (on: boolean): void => {
    for (const other of names) {
      cluster!.proxy(other, 'mx3').setBlackholed(on);
      cluster!.proxy('mx3', other).setBlackholed(on);
    }
  };
  cut(true);
  try {
    await sendRandom(cluster!.nodes, 120);
    // Longer than replication-timeout (2 s): the links notice the dead route and start redialling.
    await new Promise((r) => setTimeout(r, 2500));
    const [d1, d3] = await Promise.all([cluster!.node('mx1').dump(), cluster!.node('mx3').dump()]);
    assert.not.equal(d1.digest, d3.digest, 'the partition held');
  } finally {
    cut(false);
  }
  await assertConverged(cluster!.nodes, 20_000);
});

s('a peer with the wrong key is refused and logged, and changes nothing', async () => {
  const mx1 = cluster!.node('mx1');
  const rogue = await startCluster({
    names: ['rogue'],
    key: 'ee'.repeat(32),
    args: ['--peer', `mx1=127.0.0.1:${mx1.replPort}`, '--replication-timeout', '2'],
  });
  try {
    const c = await PolicyClient.connect(rogue.node('rogue').policyPort);
    const rogueKey = tripletKey('192.0.2.66', 'spam@rogue.example', 'victim@rcpt.example', { lookupByHost: false });
    assert.match(await c.request('192.0.2.66', 'spam@rogue.example', 'victim@rcpt.example'), /^DEFER_IF_PERMIT/);
    c.close();
    const deadline = Date.now() + 8000;
    const isRefusal = (l: Record<string, unknown>): boolean => /replication connection refused/.test(String(l.msg)) && l.code === 'STORE_ERR_REPL_AUTH';
    while (!mx1.logs.some(isRefusal)) {
      if (Date.now() > deadline) throw new Error('mx1 never logged the refusal');
      await new Promise((r) => setTimeout(r, 100));
    }
    const refusal = mx1.logs.find(isRefusal)!;
    assert.is(refusal.level, 'warn');
    assert.is(refusal.identity, 'rogue');
    assert.ok(rogue.node('rogue').logs.some((l) => l.code === 'STORE_ERR_REPL_AUTH'));
    for (const n of cluster!.nodes) assert.not.ok((await n.dump()).triplets.has(rogueKey), `${n.name} holds the rogue's triplet`);
  } finally {
    await rogue.stop();
  }
  await assertConverged(cluster!.nodes);
});

s('replication status shows every peer connected with no lag; the nodes stop cleanly', async () => {
  const mx1 = cluster!.node('mx1');
  const deadline = Date.now() + 10_000;
  let status: { peers: Array<{ name: string; connected: boolean; inbound: boolean; lagRecords: number | null }> } | undefined;
  for (;;) {
    const out = await run(process.execPath, [MXSENTRY_BIN, 'replication', 'status', '--json', '--data-dir', mx1.dataDir]).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
    status = JSON.parse(out.stdout) as typeof status;
    if (status!.peers.every((p) => p.connected && p.inbound && p.lagRecords === 0)) break;
    if (Date.now() > deadline) throw new Error(`status never settled: ${out.stdout}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(status!.peers.map((p) => p.name).sort(), ['mx2', 'mx3']);
  const text = await run(process.execPath, [MXSENTRY_BIN, 'replication', 'status', '--data-dir', mx1.dataDir]);
  assert.match(text.stdout, /^mx2\s+127\.0\.0\.1:\d+\s+yes\s+yes\s+0\s/m);
  for (const n of cluster!.nodes) assert.is(await n.stop(), 0, `${n.name} exit code`);
  // With the daemon down, status falls back to the file and the store, and says so.
  const down = await run(process.execPath, [MXSENTRY_BIN, 'replication', 'status', '--data-dir', mx1.dataDir]).catch((e: { stdout?: string; code?: number }) => ({ stdout: e.stdout ?? '', code: e.code }));
  assert.match(down.stdout, /no daemon answered/);
  assert.match(down.stdout, /^mx2\s+\S+\s+no\s+no\s+0\s/m);
});

s.run();
