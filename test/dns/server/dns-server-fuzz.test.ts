// Bounded, seeded fuzzing of the DNS server over real loopback sockets: 100,000 mutated and random
// datagrams over UDP (some from a client outside the allow list) and 10,000+ frames over TCP, then
// the server must still answer a normal query correctly and must have had no internal error.
// Capped in count and in time (about 30 s); the seed is printed so a failure can be replayed
// with FUZZ_SEED=<n>.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import dgram from 'node:dgram';
import { DnsServer } from '../../../src/dns/server/dns-server.js';
import { LocalZones } from '../../../src/dns/server/local-zones.js';
import { PacketCache } from '../../../src/dns/cache/packet-cache.js';
import { decodeMessage, encodeMessage } from '../../../src/dns/wire/message.js';
import { rdataToData } from '../../../src/dns/wire/rdata.js';
import { Rcode, RRType } from '../../../src/dns/wire/types.js';
import { CidrSet } from '../../../src/util/cidr.js';
import { ManualClock } from '../../../src/util/clock.js';
import { createSilentLogger } from '../../../src/util/logger.js';
import { FakeRecursor, LOOPBACK, TcpClient, aRecord, buildQuery, tcpQuery, udpQuery } from './dns-test-client.js';
import { seededRandom } from '../../helpers/seeded-random.js';

const UDP_PACKETS = 100_000;
const UDP_TIME_MS = 20_000;
const TCP_FRAMES = 10_000;
const TCP_TIME_MS = 10_000;
const OUTSIDE_ACL = '127.0.0.2';


function seeds(rand: () => number): Buffer[] {
  const out: Buffer[] = [];
  const names = ['www.example', 'big.example', 'localhost', '1.0.0.127.in-addr.arpa', 'x.test', 'nx.example', 'a.b.c.d.e.f.example'];
  const types = ['A', 'AAAA', 'MX', 'TXT', 'PTR', 'NS', 'SOA', 'ANY', 'AXFR', 'CNAME'] as const;
  for (const n of names) {
    for (const t of types) {
      out.push(buildQuery(n, t, { id: Math.floor(rand() * 65536) }));
      out.push(buildQuery(n, t, { id: Math.floor(rand() * 65536), edns: 4096, dnssecOk: rand() < 0.5 }));
    }
  }
  // Real responses too (QR=1, compression pointers, rdata), and the same with QR cleared.
  const response = encodeMessage({
    id: 1,
    flags: { qr: true, opcode: 0, aa: false, tc: false, rd: true, ra: true, z: false, ad: false, cd: false },
    rcode: Rcode.NOERROR,
    questions: [{ name: 'big.example.', type: RRType.A, class: 1 }],
    answers: Array.from({ length: 8 }, (_, i) => aRecord('big.example.', `198.51.100.${i}`)),
    authorities: [],
    additionals: [],
    edns: { udpSize: 1232, version: 0, dnssecOk: false, options: Buffer.alloc(0) },
  }).bytes;
  out.push(response);
  const asQuery = Buffer.from(response);
  asQuery[2] = (asQuery[2] as number) & 0x7f;
  out.push(asQuery);
  return out;
}

function mutate(base: Buffer, rand: () => number): Buffer {
  const r = rand();
  const int = (n: number): number => Math.floor(rand() * n);
  if (r < 0.08) {
    // Pure random bytes.
    const b = Buffer.alloc(int(600));
    for (let i = 0; i < b.length; i++) b[i] = int(256);
    return b;
  }
  let b = Buffer.from(base);
  const ops = 1 + int(4);
  for (let k = 0; k < ops; k++) {
    const op = rand();
    if (op < 0.35 && b.length > 0) {
      const i = int(b.length);
      b[i] = (b[i] as number) ^ (1 << int(8)); // bit flip
    } else if (op < 0.5 && b.length > 0) {
      b[int(b.length)] = int(256); // random byte
    } else if (op < 0.6) {
      b = b.subarray(0, int(b.length + 1)); // truncation
    } else if (op < 0.7 && b.length >= 12) {
      b.writeUInt16BE(int(65536), 4 + 2 * int(4)); // count inflation
    } else if (op < 0.8 && b.length > 14) {
      const i = 12 + int(b.length - 13);
      b[i] = 0xc0 | int(64); // compression pointer tweak
      b[i + 1] = int(256);
    } else if (op < 0.9) {
      const extra = Buffer.alloc(int(40));
      for (let i = 0; i < extra.length; i++) extra[i] = int(256);
      b = Buffer.concat([b, extra]); // trailing garbage
    } else if (b.length >= 4) {
      b[2] = int(256); // flags and opcode
      b[3] = int(256);
    }
  }
  return b;
}

async function waitUntil(pred: () => boolean, timeoutMs: number): Promise<boolean> {
  const start = Date.now();
  while (!pred()) {
    if (Date.now() - start > timeoutMs) return false;
    await new Promise((r) => setImmediate(r));
  }
  return true;
}

const s = suite('dns/server/dns-server-fuzz');

s('survives 100k UDP and 10k TCP mutated packets and still answers correctly', async () => {
  const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Date.now() % 1_000_000;
  console.log(`  dns-server fuzz seed ${seed} (replay with FUZZ_SEED=${seed})`);
  const rand = seededRandom(seed);
  const clock = new ManualClock();
  const recursor = new FakeRecursor();
  recursor.table.set('www.example.', [aRecord('www.example.', '192.0.2.1')]);
  recursor.table.set('big.example.', Array.from({ length: 60 }, (_, i) => aRecord('big.example.', `198.51.100.${i + 1}`)));
  const server = new DnsServer({
    recursor,
    packetCache: new PacketCache({ clock, maxBytes: 4 << 20 }),
    localZones: new LocalZones(),
    allow: new CidrSet(['127.0.0.1/32']),
    logger: createSilentLogger(),
    clock,
    limits: { maxTcpConnections: 8 },
  });
  await server.listen([{ address: LOOPBACK, port: 0 }]);
  const port = server.addresses()[0]?.port as number;
  const base = seeds(rand);
  const inside = dgram.createSocket('udp4');
  const outside = dgram.createSocket('udp4');
  let replies = 0;
  inside.on('message', () => replies++);
  outside.on('message', () => replies++);
  await new Promise<void>((r) => inside.bind(0, LOOPBACK, () => r()));
  await new Promise<void>((r) => outside.bind(0, OUTSIDE_ACL, () => r()));
  try {
    // ---- UDP ----
    const udpStart = Date.now();
    let sent = 0;
    while (sent < UDP_PACKETS && Date.now() - udpStart < UDP_TIME_MS) {
      const before = server.stats().queries.udp;
      const batch = Math.min(128, UDP_PACKETS - sent);
      for (let i = 0; i < batch; i++) {
        const pkt = mutate(base[Math.floor(rand() * base.length)] as Buffer, rand);
        (rand() < 0.1 ? outside : inside).send(pkt, port, LOOPBACK);
      }
      sent += batch;
      // Let the server read the batch before the next one, so the socket buffer never overflows.
      await waitUntil(() => server.stats().queries.udp >= before + batch, 500);
      if (recursor.questions.length > 1000) recursor.questions.length = 0;
    }
    const udpStats = server.stats();
    console.log(`  UDP: sent ${sent}, server read ${udpStats.queries.udp}, replies ${replies}, ${Date.now() - udpStart} ms`);
    assert.ok(sent >= UDP_PACKETS || Date.now() - udpStart >= UDP_TIME_MS);
    assert.ok(udpStats.queries.udp >= sent * 0.9, 'the server read (nearly) every datagram');
    assert.ok(udpStats.refused > 0 && udpStats.formerr > 0 && udpStats.dropped > 0, 'the interesting paths were reached');

    // ---- TCP ----
    const tcpStart = Date.now();
    let frames = 0;
    while (frames < TCP_FRAMES && Date.now() - tcpStart < TCP_TIME_MS) {
      const client = await TcpClient.connect(port);
      const before = server.stats().queries.tcp;
      try {
        const perConn = 100 + Math.floor(rand() * 400);
        // One connection in five carries a lying length somewhere, which desynchronises the rest
        // of its stream (the server then reads garbage frames or waits for a frame that never ends).
        const lieAt = rand() < 0.2 ? Math.floor(rand() * perConn) : -1;
        const chunks: Buffer[] = [];
        let count = 0;
        for (let i = 0; i < perConn && frames < TCP_FRAMES; i++, frames++, count++) {
          const pkt = mutate(base[Math.floor(rand() * base.length)] as Buffer, rand).subarray(0, 65535);
          const len = Buffer.alloc(2);
          len.writeUInt16BE(i === lieAt ? Math.floor(rand() * 65536) : pkt.length, 0);
          chunks.push(len, pkt);
        }
        const stream = Buffer.concat(chunks);
        for (let off = 0; off < stream.length; ) {
          const n = 1 + Math.floor(rand() * 3000);
          client.write(stream.subarray(off, off + n));
          off += n;
        }
        await waitUntil(() => client.closed || server.stats().queries.tcp >= before + count, lieAt >= 0 ? 100 : 1000);
      } finally {
        client.close();
      }
    }
    console.log(`  TCP: ${frames} frames, server read ${server.stats().queries.tcp}, ${Date.now() - tcpStart} ms`);
    assert.ok(frames >= TCP_FRAMES || Date.now() - tcpStart >= TCP_TIME_MS);

    // ---- still healthy ----
    const m = decodeMessage((await udpQuery(port, buildQuery('WWW.example', 'A', { id: 4321 }))) as Buffer);
    assert.is(m.id, 4321);
    assert.is(m.rcode, Rcode.NOERROR);
    assert.is(m.questions[0]?.name, 'WWW.example.');
    assert.is(rdataToData(RRType.A, m.answers[0]?.rdata as Buffer), '192.0.2.1');
    const t = decodeMessage(await tcpQuery(port, buildQuery('big.example', 'A', { id: 99 })));
    assert.is(t.answers.length, 60);
    assert.is(server.stats().internalErrors, 0, 'no unexpected exception on any input');
  } finally {
    inside.close();
    outside.close();
    await server.close();
  }
});

s.run();
