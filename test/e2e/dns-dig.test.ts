// End-to-end: the built daemon (`node bin/mxsentry serve`, as a user starts it) answering the real
// `dig` in front of the fake authoritative tree on 127.53.x.y: UDP/TCP, negative answers, CNAME, MX,
// truncation and TCP retry, letter case, local zones, ACL, start-up failures, garbage, SIGTERM.
// Needs a build (npx tsc) first. Every daemon, fake server and socket is closed before the suite ends;
// it never talks to anything outside 127.0.0.0/8.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import {
  DAEMON_ADDRESS,
  removeTempDir,
  runDaemonToExit,
  spawnDaemon,
  startSharedPortTree,
  writeTempFile,
  type RunningDaemon,
  type SharedPortTree,
} from '../helpers/daemon.js';
import { standardTree, type HierarchySpec } from '../helpers/fake-hierarchy.js';
import { requirePeer } from '../helpers/peers.js';
import { loggedHook } from '../helpers/hook-errors.js';

const BIG_TXT_COUNT = 16;
const ROOT_SERVERS = ['127.53.0.1', '127.53.0.2'];

/** standardTree() plus big.example.com with 16 TXT records: about 700-950 bytes, over 512, under 1232. */
function treeWithBigAnswer(): HierarchySpec {
  const spec = standardTree();
  const zone = spec.zones['example.com.'];
  assert.ok(zone, 'standardTree has example.com.');
  for (let i = 0; i < BIG_TXT_COUNT; i++) zone.records.push(`big 300 IN TXT "record ${String(i).padStart(2, '0')} of a deliberately long answer"`);
  return spec;
}

interface DigRecord {
  name: string;
  ttl: number;
  type: string;
  data: string;
}

interface DigResult {
  /** dig's whole output. */
  raw: string;
  status: string;
  /** Header flags of the last answer dig printed ('qr', 'rd', 'ra', 'tc', 'aa'). */
  flags: string[];
  /** Question section names as printed (case kept). */
  question: string[];
  answer: DigRecord[];
  authority: DigRecord[];
  /** 'UDP' or 'TCP' from the ';; SERVER:' line. */
  transport: string;
  /** dig printed ';; Truncated, retrying in TCP mode.' */
  retriedTcp: boolean;
}

/** Parses the last response block of dig's default output (after a TC retry, that is the TCP one). */
function parseDig(raw: string): DigResult {
  const lastHeader = raw.lastIndexOf('->>HEADER<<-');
  assert.ok(lastHeader >= 0, `dig printed no answer:\n${raw}`);
  const block = raw.slice(lastHeader);
  const status = /status: ([A-Z]+)/.exec(block)?.[1] ?? '';
  const flags = (/;; flags: ([a-z ]*);/.exec(block)?.[1] ?? '').trim().split(/\s+/).filter(Boolean);
  const section = (title: string): string[] => {
    const start = block.indexOf(`;; ${title} SECTION:\n`);
    if (start < 0) return [];
    const rest = block.slice(start).split('\n').slice(1);
    const end = rest.findIndex((l) => l.trim() === '');
    return end < 0 ? rest : rest.slice(0, end);
  };
  const records = (lines: string[]): DigRecord[] =>
    lines.map((l) => {
      const [name = '', ttl = '', , type = '', ...data] = l.split(/\s+/);
      return { name, ttl: Number(ttl), type, data: data.join(' ') };
    });
  return {
    raw,
    status,
    flags,
    question: section('QUESTION').map((l) => (l.split(/\s+/)[0] ?? '').replace(/^;/, '')),
    answer: records(section('ANSWER')),
    authority: records(section('AUTHORITY')),
    transport: /;; SERVER: .*\((UDP|TCP)\)/.exec(block)?.[1] ?? '',
    retriedTcp: raw.includes('Truncated, retrying in TCP mode'),
  };
}

/** Runs dig against the daemon: one try, 2 s timeout; extra args as on the command line. */
function dig(digPath: string, port: number, args: string[]): Promise<DigResult> {
  const argv = [`@${DAEMON_ADDRESS}`, '-p', String(port), '+time=2', '+tries=1', ...args];
  return new Promise((resolve, reject) => {
    execFile(digPath, argv, { timeout: 10_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && !stdout.includes('->>HEADER<<-')) {
        reject(new Error(`dig ${argv.join(' ')} failed: ${err.message}\n${stdout}${stderr}`));
        return;
      }
      resolve(parseDig(stdout));
    });
  });
}

/** A deterministic byte generator (xorshift32) so a failing garbage run can be replayed. */
function garbageBytes(seed: number, length: number): Buffer {
  let x = seed >>> 0 || 1;
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Sends datagrams from one socket, then closes it (no answers expected or awaited). */
async function sendDatagrams(port: number, packets: Buffer[]): Promise<void> {
  const socket = dgram.createSocket('udp4');
  try {
    await new Promise<void>((done, fail) => {
      socket.once('error', fail);
      socket.connect(port, DAEMON_ADDRESS, () => done());
    });
    for (const p of packets) await new Promise<void>((done, fail) => socket.send(p, (err) => (err ? fail(err) : done())));
  } finally {
    await new Promise<void>((done) => socket.close(() => done()));
  }
}

/** Sends one datagram and counts the replies that arrive within waitMs (a short real wait). */
async function repliesWithin(port: number, packet: Buffer, waitMs: number): Promise<number> {
  const socket = dgram.createSocket('udp4');
  let replies = 0;
  socket.on('message', () => replies++);
  try {
    await new Promise<void>((done, fail) => {
      socket.once('error', fail);
      socket.connect(port, DAEMON_ADDRESS, () => done());
    });
    await new Promise<void>((done, fail) => socket.send(packet, (err) => (err ? fail(err) : done())));
    await new Promise((done) => setTimeout(done, waitMs));
    return replies;
  } finally {
    await new Promise<void>((done) => socket.close(() => done()));
  }
}

/**
 * Opens a TCP connection, writes `bytes`, optionally half-closes, and collects what comes back
 * until the daemon closes or timeoutMs passes (then it is destroyed).
 */
function tcpExchange(port: number, bytes: Buffer, opts: { end: boolean; timeoutMs: number }): Promise<{ data: Buffer; closedByPeer: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = net.connect({ host: DAEMON_ADDRESS, port });
    const timer = setTimeout(() => {
      sock.destroy();
      resolve({ data: Buffer.concat(chunks), closedByPeer: false });
    }, opts.timeoutMs);
    sock.on('connect', () => {
      sock.write(bytes);
      if (opts.end) sock.end();
    });
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', (err) => {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve({ data: Buffer.concat(chunks), closedByPeer: true });
    });
  });
}

function queriesFor(tree: SharedPortTree, pattern: RegExp, servers?: string[]): string[] {
  return tree
    .allQueries()
    .filter((q) => (!servers || servers.includes(q.server)) && pattern.test(q.name))
    .map((q) => `${q.server} ${q.name} ${q.type}`);
}

const s = suite('e2e/dns-dig');
let tree: SharedPortTree | null = null;
let daemon: RunningDaemon | null = null;

/** The shared daemon and tree; fails the test if before() could not start them. */
function ctx(): { tree: SharedPortTree; daemon: RunningDaemon } {
  assert.ok(tree && daemon, 'the shared daemon did not start (see the before hook error)');
  return { tree, daemon };
}

s.before(loggedHook(async () => {
  tree = await startSharedPortTree(treeWithBigAnswer());
  daemon = await spawnDaemon({ upstreamPort: tree.port, rootHints: tree.rootHints });
}));

s.after(async () => {
  try {
    await daemon?.dispose();
  } finally {
    await tree?.stop();
  }
});

s('the client letter case comes back in the question, on the first answer and on a cache hit', async () => {
  const digPath = requirePeer('dig', 'dig letter case');
  if (!digPath) return;
  const { tree, daemon } = ctx();
  const first = await dig(digPath, daemon.port, ['WwW.ExAmPlE.cOm', 'A']);
  assert.is(first.status, 'NOERROR');
  assert.equal(first.question, ['WwW.ExAmPlE.cOm.']);
  assert.equal(first.answer.map((r) => r.data), ['192.0.2.1']);
  assert.ok(queriesFor(tree, /^www\.example\.com\.$/i).length > 0, 'the first answer was resolved upstream');

  const upstreamBefore = tree.allQueries().length;
  const hit = await dig(digPath, daemon.port, ['wWw.eXaMpLe.CoM', 'A']);
  assert.is(hit.status, 'NOERROR');
  assert.equal(hit.question, ['wWw.eXaMpLe.CoM.']);
  assert.equal(hit.answer.map((r) => r.data), ['192.0.2.1']);
  assert.is(tree.allQueries().length, upstreamBefore, 'the repeated query is answered from the cache');
});

s('www.example.com A over UDP and over TCP: NOERROR, 192.0.2.1, flags qr rd ra', async () => {
  const digPath = requirePeer('dig', 'dig UDP/TCP');
  if (!digPath) return;
  const { daemon } = ctx();
  for (const [extra, transport] of [[[], 'UDP'], [['+tcp'], 'TCP']] as const) {
    const r = await dig(digPath, daemon.port, [...extra, 'www.example.com', 'A']);
    assert.is(r.transport, transport);
    assert.is(r.status, 'NOERROR');
    assert.equal(r.flags.sort(), ['qr', 'ra', 'rd']);
    assert.equal(r.question, ['www.example.com.']);
    assert.equal(r.answer.map((a) => [a.name, a.type, a.data]), [['www.example.com.', 'A', '192.0.2.1']]);
    assert.ok(r.answer[0]!.ttl > 0 && r.answer[0]!.ttl <= 300, `TTL ${r.answer[0]!.ttl} within the zone's 300`);
  }
});

s('NXDOMAIN carries the zone SOA in AUTHORITY; NODATA is NOERROR with no answer and the SOA', async () => {
  const digPath = requirePeer('dig', 'dig NXDOMAIN/NODATA');
  if (!digPath) return;
  const { daemon } = ctx();
  const nx = await dig(digPath, daemon.port, ['nope.example.com', 'A']);
  assert.is(nx.status, 'NXDOMAIN');
  assert.is(nx.answer.length, 0);
  assert.equal(nx.authority.map((r) => [r.name, r.type]), [['example.com.', 'SOA']]);
  assert.ok(nx.authority[0]!.data.startsWith('ns1.example.com. hostmaster.example.com. 2024010101'), nx.authority[0]!.data);
  assert.ok(nx.authority[0]!.ttl <= 300, 'RFC 2308: negative TTL at most the SOA minimum');

  const nodata = await dig(digPath, daemon.port, ['www.example.com', 'MX']);
  assert.is(nodata.status, 'NOERROR');
  assert.is(nodata.answer.length, 0);
  assert.equal(nodata.authority.map((r) => [r.name, r.type]), [['example.com.', 'SOA']]);

  // Repeated from the cache: the same negative answers.
  const again = await dig(digPath, daemon.port, ['nope.example.com', 'A']);
  assert.is(again.status, 'NXDOMAIN');
  assert.equal(again.authority.map((r) => r.type), ['SOA']);
});

s('a CNAME chain within the zone and one across zones', async () => {
  const digPath = requirePeer('dig', 'dig CNAME');
  if (!digPath) return;
  const { daemon } = ctx();
  const chain = await dig(digPath, daemon.port, ['alias.example.com', 'A']);
  assert.is(chain.status, 'NOERROR');
  assert.equal(chain.answer.map((r) => [r.name, r.type, r.data]), [
    ['alias.example.com.', 'CNAME', 'alias2.example.com.'],
    ['alias2.example.com.', 'CNAME', 'www.example.com.'],
    ['www.example.com.', 'A', '192.0.2.1'],
  ]);
  const cross = await dig(digPath, daemon.port, ['ext.example.com', 'A']);
  assert.is(cross.status, 'NOERROR');
  assert.equal(cross.answer.map((r) => [r.name, r.type, r.data]), [
    ['ext.example.com.', 'CNAME', 'www.example.net.'],
    ['www.example.net.', 'A', '192.0.2.20'],
  ]);
});

s('dig +norec: no recursion, REFUSED for a name not cached; the cached answer once it is', async () => {
  const digPath = requirePeer('dig', 'dig +norec');
  if (!digPath) return;
  const { tree, daemon } = ctx();
  const before = queriesFor(tree, /^host\.ent\.example\.com\.$/i).length;
  const miss = await dig(digPath, daemon.port, ['+norec', 'host.ent.example.com', 'A']);
  assert.is(miss.status, 'REFUSED');
  assert.equal(miss.flags.sort(), ['qr', 'ra']);
  assert.is(queriesFor(tree, /^host\.ent\.example\.com\.$/i).length, before, 'RD=0 sent nothing upstream');
  await dig(digPath, daemon.port, ['host.ent.example.com', 'A']);
  const hit = await dig(digPath, daemon.port, ['+norec', 'host.ent.example.com', 'A']);
  assert.is(hit.status, 'NOERROR');
  assert.equal(hit.answer.map((a) => a.data), ['192.0.2.30']);
});

s('the MX answer', async () => {
  const digPath = requirePeer('dig', 'dig MX');
  if (!digPath) return;
  const { daemon } = ctx();
  const r = await dig(digPath, daemon.port, ['example.com', 'MX']);
  assert.is(r.status, 'NOERROR');
  assert.equal(r.answer.map((a) => [a.name, a.type, a.data]), [['example.com.', 'MX', '10 mail.example.com.']]);
});

s('a large answer: TC over UDP without EDNS and at +bufsize=512; dig retries over TCP; fits at 1232', async () => {
  const digPath = requirePeer('dig', 'dig truncation');
  if (!digPath) return;
  const { daemon } = ctx();
  // +ignore shows the truncated UDP answer itself instead of retrying.
  const noEdns = await dig(digPath, daemon.port, ['+noedns', '+ignore', 'big.example.com', 'TXT']);
  assert.is(noEdns.transport, 'UDP');
  assert.ok(noEdns.flags.includes('tc'), `TC expected without EDNS: ${noEdns.flags.join(' ')}`);
  assert.ok(noEdns.answer.length < BIG_TXT_COUNT);

  const small = await dig(digPath, daemon.port, ['+bufsize=512', '+ignore', 'big.example.com', 'TXT']);
  assert.is(small.transport, 'UDP');
  assert.ok(small.flags.includes('tc'), `TC expected at bufsize 512: ${small.flags.join(' ')}`);

  const retried = await dig(digPath, daemon.port, ['+noedns', 'big.example.com', 'TXT']);
  assert.ok(retried.retriedTcp, 'dig retried over TCP');
  assert.is(retried.transport, 'TCP');
  assert.is(retried.status, 'NOERROR');
  assert.not.ok(retried.flags.includes('tc'));
  assert.is(retried.answer.length, BIG_TXT_COUNT);
  assert.ok(retried.answer.every((a) => a.type === 'TXT' && /^"record \d\d of a deliberately long answer"$/.test(a.data)));

  const full = await dig(digPath, daemon.port, ['big.example.com', 'TXT']);
  assert.is(full.transport, 'UDP');
  assert.not.ok(full.retriedTcp);
  assert.not.ok(full.flags.includes('tc'));
  assert.is(full.answer.length, BIG_TXT_COUNT);
});

s('localhost A is 127.0.0.1 and test. is NXDOMAIN, both answered locally', async () => {
  const digPath = requirePeer('dig', 'dig local zones');
  if (!digPath) return;
  const { tree, daemon } = ctx();
  const local = await dig(digPath, daemon.port, ['localhost', 'A']);
  assert.is(local.status, 'NOERROR');
  assert.ok(local.flags.includes('aa'), 'local data is authoritative');
  assert.equal(local.answer.map((r) => [r.name, r.type, r.data]), [['localhost.', 'A', '127.0.0.1']]);

  const test = await dig(digPath, daemon.port, ['host.test', 'A']);
  assert.is(test.status, 'NXDOMAIN');
  assert.equal(test.authority.map((r) => [r.name, r.type]), [['test.', 'SOA']]);
  assert.equal(queriesFor(tree, /(^|\.)(localhost|test)\.$/i), [], 'never sent upstream');
});

s('with --no-default-zone test. the query goes upstream; the fake root answers NXDOMAIN', async () => {
  const digPath = requirePeer('dig', 'dig --no-default-zone');
  if (!digPath) return;
  const { tree } = ctx();
  const d = await spawnDaemon({ upstreamPort: tree.port, rootHints: tree.rootHints, args: ['--no-default-zone', 'test.'] });
  try {
    const r = await dig(digPath, d.port, ['upstream.test', 'A']);
    assert.is(r.status, 'NXDOMAIN');
    assert.equal(r.authority.map((a) => [a.name, a.type]), [['.', 'SOA']], 'the SOA comes from the fake root');
    assert.ok(queriesFor(tree, /(^|\.)test\.$/i, ROOT_SERVERS).length > 0, `the fake root was asked: ${JSON.stringify(tree.allQueries().map((q) => q.name))}`);
    await d.stop();
  } finally {
    await d.dispose();
  }
});

s('ACL: with --allow 127.0.0.2/32 a dig from 127.0.0.1 is REFUSED, one from 127.0.0.2 answered', async () => {
  const digPath = requirePeer('dig', 'dig ACL');
  if (!digPath) return;
  const { tree } = ctx();
  const d = await spawnDaemon({ upstreamPort: tree.port, rootHints: tree.rootHints, args: ['--allow', '127.0.0.2/32'] });
  try {
    const before = queriesFor(tree, /^www\.example\.com\.$/i).length;
    const refused = await dig(digPath, d.port, ['-b', '127.0.0.1', 'www.example.com', 'A']);
    assert.is(refused.status, 'REFUSED');
    assert.is(refused.answer.length, 0);
    assert.not.ok(refused.flags.includes('ra'), 'no recursion offered to a refused client');
    assert.is(queriesFor(tree, /^www\.example\.com\.$/i).length, before, 'a refused query is not resolved');
    const allowed = await dig(digPath, d.port, ['-b', '127.0.0.2', 'www.example.com', 'A']);
    assert.is(allowed.status, 'NOERROR');
    assert.equal(allowed.answer.map((a) => a.data), ['192.0.2.1']);
    await d.stop();
  } finally {
    await d.dispose();
  }
});

s('ACL: an --allow line for another network keeps loopback allowed (the host\'s own resolv.conf)', async () => {
  const digPath = requirePeer('dig', 'dig ACL with a LAN allow line');
  if (!digPath) return;
  const { tree } = ctx();
  const d = await spawnDaemon({ upstreamPort: tree.port, rootHints: tree.rootHints, args: ['--allow', '192.168.1.0/24'] });
  try {
    const local = await dig(digPath, d.port, ['-b', '127.0.0.1', 'www.example.com', 'A']);
    assert.is(local.status, 'NOERROR');
    assert.equal(local.answer.map((a) => a.data), ['192.0.2.1']);
    await d.stop();
  } finally {
    await d.dispose();
  }
});

s('binding a port in use fails with a clear message and a non-zero exit', async () => {
  const { tree, daemon } = ctx();
  const hints = writeTempFile('root.hints', tree.rootHints);
  try {
    const r = await runDaemonToExit([
      '--dns-listen', `${DAEMON_ADDRESS}:${daemon.port}`, '--root-hints', hints.file, '--query-loopback',
      '--upstream-port', String(tree.port), '--data-dir', `${hints.dir}/data`,
    ]);
    assert.ok(r.code !== 0 && r.code !== null, `exit code ${String(r.code)}`);
    assert.ok(r.stderr.includes(`${DAEMON_ADDRESS}:${daemon.port}`), `stderr names the address: ${r.stderr}`);
    assert.match(r.stderr, /in use/);
  } finally {
    removeTempDir(hints.dir);
  }
  assert.is(daemon.exitInfo(), null, 'the first daemon keeps running');
});

s('a broken config file: exit 2, every problem named with its key and line', async () => {
  const conf = writeTempFile('mxsentry.conf', [
    '# mxsentry e2e: a config with two mistakes',
    'log-level: info',
    '',
    'cache-size: lots',
    'prefetch-rat: 5',
  ].join('\n'));
  try {
    const r = await runDaemonToExit(['--config', conf.file, '--dns-listen', `${DAEMON_ADDRESS}:1`, '--data-dir', `${conf.dir}/data`]);
    assert.is(r.code, 2, `exit code ${String(r.code)}; stderr: ${r.stderr}`);
    assert.match(r.stderr, `${conf.file}:4: cache-size`);
    assert.match(r.stderr, /"lots" is not a size/);
    assert.match(r.stderr, `${conf.file}:5: unknown key "prefetch-rat"`);
    assert.match(r.stderr, /did you mean "prefetch-rate"/);
  } finally {
    removeTempDir(conf.dir);
  }
});

s('an empty --config value: exit 2 before anything listens, never a start on the defaults', async () => {
  const dir = writeTempFile('unused', '').dir;
  try {
    // `--config "$CONF"` with CONF unset.
    const r = await runDaemonToExit(['--config', '', '--dns-listen', `${DAEMON_ADDRESS}:1`, '--data-dir', `${dir}/data`]);
    assert.is(r.code, 2, `exit code ${String(r.code)}; stderr: ${r.stderr}`);
    assert.match(r.stderr, 'the config file name is empty');
    assert.not.match(r.stdout, /mxsentry started/);
  } finally {
    removeTempDir(dir);
  }
});

s('garbage UDP packets and broken TCP frames do not stop it answering dig', async () => {
  const { daemon } = ctx();
  const packets: Buffer[] = [Buffer.alloc(0), Buffer.from([0x12]), Buffer.alloc(12)];
  for (let i = 0; i < 40; i++) packets.push(garbageBytes(0x5eed + i, 1 + ((i * 37) % 600)));
  // A header claiming 65535 records of each section over a 12-byte packet (dns-packet trusts counts).
  packets.push(Buffer.from([0xab, 0xcd, 0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]));
  await sendDatagrams(daemon.port, packets);
  // A response (QR=1, '. A') aimed at the server: it must never answer one (no reflection loops).
  const response = Buffer.from([0x00, 0x01, 0x81, 0x80, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01]);
  assert.is(await repliesWithin(daemon.port, response, 300), 0, 'a QR=1 packet is dropped');

  // A complete TCP frame whose header is readable but whose question is cut short: FORMERR, same ID.
  const broken = Buffer.from([0x00, 0x0e, 0x42, 0x42, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x65]);
  const formerr = await tcpExchange(daemon.port, broken, { end: true, timeoutMs: 3000 });
  assert.ok(formerr.data.length >= 14, `a framed reply to the broken query: ${formerr.data.toString('hex')}`);
  assert.is(formerr.data.readUInt16BE(0), formerr.data.length - 2, 'RFC 7766 length prefix');
  assert.is(formerr.data.readUInt16BE(2), 0x4242, 'the query ID');
  assert.is(formerr.data[4]! & 0x80, 0x80, 'QR set');
  assert.is(formerr.data[5]! & 0x0f, 1, 'RCODE FORMERR');
  assert.ok(formerr.closedByPeer, 'the connection is closed after the client half-closes');

  // A frame announcing 300 bytes that never come, then EOF: the daemon closes without an answer.
  const partial = await tcpExchange(daemon.port, Buffer.from([0x01, 0x2c, 0xde, 0xad, 0xbe, 0xef]), { end: true, timeoutMs: 3000 });
  assert.is(partial.data.length, 0);
  assert.ok(partial.closedByPeer);
  // 50 random bytes as a stream: whatever it parses to, the connection must end, not hang.
  const noise = await tcpExchange(daemon.port, garbageBytes(0xbad, 50), { end: true, timeoutMs: 3000 });
  assert.ok(noise.closedByPeer);

  assert.is(daemon.exitInfo(), null, 'still running');
  const digPath = requirePeer('dig', 'dig after garbage');
  if (!digPath) return;
  for (const extra of [[], ['+tcp']]) {
    const r = await dig(digPath, daemon.port, [...extra, 'mail.example.com', 'A']);
    assert.is(r.status, 'NOERROR');
    assert.equal(r.answer.map((a) => a.data), ['192.0.2.25']);
  }
});

s('SIGTERM: exit code 0, a "stopped" log line, JSON logs only', async () => {
  const { daemon } = ctx();
  const exit = await daemon.stop();
  assert.equal(exit, { code: 0, signal: null });
  const msgs = daemon.logLines().map((l) => l.msg);
  assert.ok(msgs.includes('mxsentry started'), JSON.stringify(msgs));
  assert.ok(msgs.includes('stopping'), JSON.stringify(msgs));
  assert.is(msgs[msgs.length - 1], 'stopped', JSON.stringify(msgs));
  assert.equal(daemon.nonJsonLines(), [], 'stdout is JSON lines only');
  assert.ok(daemon.logLines().every((l) => typeof l.level === 'string' && typeof l.time === 'string'));
});

s.run();
