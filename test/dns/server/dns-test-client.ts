// Test helpers for the DNS server suites: query builders (dns-packet), UDP and TCP loopback
// clients that always close their sockets, and a fake Recursor that counts calls. Used only by
// test/dns/server/*, with a DnsServer starter and reply readers; never binds anything but 127.0.0.1.
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import * as assert from 'uvu/assert';
import { PacketCache } from '../../../src/dns/cache/packet-cache.js';
import type { QueryAnswer, Recursor } from '../../../src/dns/resolver-api.js';
import { DnsServer, type DnsServerLimits } from '../../../src/dns/server/dns-server.js';
import { LocalZones } from '../../../src/dns/server/local-zones.js';
import { decodeMessage } from '../../../src/dns/wire/message.js';
import { rdataToData } from '../../../src/dns/wire/rdata.js';
import { RRClass, RRType, Rcode, type Message, type Question, type ResourceRecord } from '../../../src/dns/wire/types.js';
import { nameToWire } from '../../../src/dns/wire/name.js';
import { CidrSet } from '../../../src/util/cidr.js';
import { ManualClock } from '../../../src/util/clock.js';
import { createSilentLogger } from '../../../src/util/logger.js';

export const LOOPBACK = '127.0.0.1';

/** A query in wire form; `edns` adds an OPT with that UDP size. */
export function buildQuery(
  name: string,
  type: dnsPacket.RecordType | 'ANY' = 'A',
  opts: { id?: number; edns?: number; ednsVersion?: number; dnssecOk?: boolean; rd?: boolean; opcode?: number; qclass?: dnsPacket.RecordClass } = {},
): Buffer {
  const additionals: dnsPacket.Answer[] = [];
  if (opts.edns !== undefined) {
    additionals.push({
      type: 'OPT',
      name: '.',
      udpPayloadSize: opts.edns,
      flags: opts.dnssecOk ? dnsPacket.DNSSEC_OK : 0,
    } as dnsPacket.Answer);
  }
  const buf = dnsPacket.encode({
    type: 'query',
    id: opts.id ?? 0x1234,
    flags: opts.rd === false ? 0 : dnsPacket.RECURSION_DESIRED,
    // dns-packet encodes 'ANY' (255) although its types do not list it.
    questions: [{ type: type as dnsPacket.RecordType, name, class: opts.qclass ?? 'IN' }],
    additionals,
  });
  if (opts.opcode !== undefined) buf[2] = ((buf[2] as number) & 0x87) | ((opts.opcode & 0xf) << 3);
  if (opts.ednsVersion !== undefined) {
    // OPT TTL = ext-rcode(8) version(8) DO(1) Z(15); the OPT is the last RR, its TTL 6 bytes after the root+type+class.
    buf[buf.length - 11 + 5 + 1] = opts.ednsVersion;
  }
  return buf;
}

/** Sends one datagram from 127.0.0.1 and waits for one reply; null after `timeoutMs` without one. */
export function udpQuery(port: number, query: Buffer, timeoutMs = 2000, address = LOOPBACK): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    const timer = setTimeout(() => finish(null), timeoutMs);
    function finish(v: Buffer | null): void {
      clearTimeout(timer);
      sock.close();
      resolve(v);
    }
    sock.on('error', (err) => {
      clearTimeout(timer);
      sock.close();
      reject(err);
    });
    sock.on('message', (msg) => finish(msg));
    sock.send(query, port, address);
  });
}

/** A TCP client that collects length-framed replies. */
export class TcpClient {
  readonly socket: net.Socket;
  readonly replies: Buffer[] = [];
  closed = false;
  private buf = Buffer.alloc(0);
  private waiters: Array<() => void> = [];

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      while (this.buf.length >= 2 && this.buf.length >= 2 + this.buf.readUInt16BE(0)) {
        const len = this.buf.readUInt16BE(0);
        this.replies.push(this.buf.subarray(2, 2 + len));
        this.buf = this.buf.subarray(2 + len);
      }
      this.wake();
    });
    socket.on('error', () => {
      // ECONNRESET when the server cuts the connection is what some tests wait for.
      this.closed = true;
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  static connect(port: number, address = LOOPBACK): Promise<TcpClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host: address });
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new TcpClient(s));
      });
      s.once('error', reject);
    });
  }

  /** Writes a query with its 2-byte length prefix. */
  send(query: Buffer): void {
    const len = Buffer.alloc(2);
    len.writeUInt16BE(query.length, 0);
    this.socket.write(Buffer.concat([len, query]));
  }

  /** Writes raw bytes (for partial frames). */
  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Resolves when `n` replies arrived in total, or rejects after timeoutMs. */
  async waitReplies(n: number, timeoutMs = 3000): Promise<Buffer[]> {
    await this.waitFor(() => this.replies.length >= n, timeoutMs, `${n} replies (have ${this.replies.length})`);
    return this.replies.slice(0, n);
  }

  /** Resolves when the server has closed the connection. */
  async waitClosed(timeoutMs = 3000): Promise<void> {
    await this.waitFor(() => this.closed, timeoutMs, 'the connection to close');
  }

  close(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private waitFor(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
      const check = (): void => {
        if (pred()) {
          clearTimeout(timer);
          resolve();
        } else {
          this.waiters.push(check);
        }
      };
      check();
    });
  }
}

/** One TCP round trip on a fresh connection. */
export async function tcpQuery(port: number, query: Buffer): Promise<Buffer> {
  const c = await TcpClient.connect(port);
  try {
    c.send(query);
    const [reply] = await c.waitReplies(1);
    return reply as Buffer;
  } finally {
    c.close();
  }
}

export function aRecord(name: string, address: string, ttl = 300): ResourceRecord {
  return { name, type: RRType.A, class: RRClass.IN, ttl, rdata: Buffer.from(address.split('.').map(Number)) };
}

/** A promise with its resolver exposed, to hold a fake recursion open. */
export function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/**
 * A fake Recursor: answers from a table by lower-case qname, NXDOMAIN (with an SOA) otherwise,
 * counts calls, and holds answers for names in `hold` until released.
 */
export class FakeRecursor implements Recursor {
  calls = 0;
  readonly questions: Question[] = [];
  readonly table = new Map<string, ResourceRecord[]>();
  readonly hold = new Map<string, { promise: Promise<void>; resolve: (v: void) => void }>();
  throwFor = new Set<string>();

  async answerQuery(question: Question, _opts: { dnssecOk: boolean; checkingDisabled: boolean }): Promise<QueryAnswer> {
    this.calls++;
    this.questions.push(question);
    const name = question.name.toLowerCase();
    if (this.throwFor.has(name)) throw new Error(`fake recursor failure for ${name}`);
    const held = this.hold.get(name);
    if (held) await held.promise;
    const records = this.table.get(name);
    if (records) {
      const answers = records.filter((r) => r.type === question.type || question.type === RRType.ANY).map((r) => ({ ...r, name: question.name }));
      return { rcode: Rcode.NOERROR, answers, authorities: answers.length > 0 ? [] : [soa()], additionals: [], source: 'recursion', cacheable: true };
    }
    return { rcode: Rcode.NXDOMAIN, answers: [], authorities: [soa()], additionals: [], source: 'recursion', cacheable: true };
  }

  /** Makes answers for `name` wait until the returned function is called. */
  holdName(name: string): () => void {
    const d = deferred<void>();
    this.hold.set(name.toLowerCase(), d);
    return () => {
      this.hold.delete(name.toLowerCase());
      d.resolve();
    };
  }
}

function soa(): ResourceRecord {
  const m = nameToWire('ns.example.');
  const r = nameToWire('hostmaster.example.');
  const rdata = Buffer.alloc(m.length + r.length + 20);
  m.copy(rdata, 0);
  r.copy(rdata, m.length);
  [1, 3600, 600, 86400, 300].forEach((n, i) => rdata.writeUInt32BE(n, m.length + r.length + i * 4));
  return { name: 'example.', type: RRType.SOA, class: RRClass.IN, ttl: 300, rdata };
}

/** A DnsServer on 127.0.0.1 (port 0) with a FakeRecursor, a ManualClock and a packet cache, for the server suites. */
export interface ServerCtx {
  server: DnsServer;
  recursor: FakeRecursor;
  clock: ManualClock;
  cache: PacketCache;
  zones: LocalZones;
  port: number;
}

/** Starts a DnsServer: www.example. has one A record, big.example. 60 (over 512 bytes). */
export async function startServer(
  opts: { allow?: string[]; limits?: Partial<DnsServerLimits>; zones?: LocalZones; cache?: boolean } = {},
): Promise<ServerCtx> {
  const clock = new ManualClock();
  const recursor = new FakeRecursor();
  recursor.table.set('www.example.', [aRecord('www.example.', '192.0.2.1')]);
  // 60 A records: about 1 KB compressed, over 512 bytes.
  recursor.table.set('big.example.', Array.from({ length: 60 }, (_, i) => aRecord('big.example.', `198.51.100.${i + 1}`)));
  const cache = new PacketCache({ clock, maxBytes: 1 << 20 });
  const zones = opts.zones ?? new LocalZones();
  const server = new DnsServer({
    recursor,
    packetCache: opts.cache === false ? null : cache,
    localZones: zones,
    allow: new CidrSet(opts.allow ?? ['127.0.0.0/8', '::1/128']),
    logger: createSilentLogger(),
    clock,
    limits: opts.limits,
  });
  await server.listen([{ address: LOOPBACK, port: 0 }]);
  const udp = server.addresses().find((a) => a.transport === 'udp');
  assert.ok(udp);
  return { server, recursor, clock, cache, zones, port: udp.port };
}

/** The reply decoded; fails the test when there is none. */
export function decodeReply(buf: Buffer | null | undefined): Message {
  assert.ok(buf, 'expected a reply');
  return decodeMessage(buf);
}

/** The A addresses of a reply's answer section. */
export function answerAddresses(m: Message): string[] {
  return m.answers.filter((r) => r.type === RRType.A).map((r) => rdataToData(RRType.A, r.rdata) as string);
}

/** Polls (every 2 ms) until `pred` holds; throws after `timeoutMs`. */
export async function waitUntil(pred: () => boolean, timeoutMs = 3000): Promise<void> {
  const start = Date.now();
  while (!pred()) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** The kernel's cap on SO_RCVBUF requests (net.core.rmem_max). */
export function rmemMax(): number {
  return Number(readFileSync('/proc/sys/net/core/rmem_max', 'utf8').trim());
}
