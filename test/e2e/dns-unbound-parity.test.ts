// End-to-end: the built daemon and a real Unbound (started as the DNS bench starts it) get the same
// hand-built client queries over UDP and TCP and must answer alike: EDNS, opcodes, meta-types, zone
// transfers, malformed questions, local data. Only queries that need no recursion are compared, so
// neither server asks anything upstream; the deliberate differences (RA on errors, CHAOS names, RD=0
// misses) are in README.md "Migrating from Unbound". Needs a build and the `unbound` peer.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ResolverInstance } from '../../bench/lib/resolver-instances.js';
import { ResourceRegistry } from '../../bench/lib/managed-process.js';
import { spawnDaemon, startSharedPortTree, type RunningDaemon, type SharedPortTree } from '../helpers/daemon.js';
import { standardTree } from '../helpers/fake-hierarchy.js';
import { loggedHook } from '../helpers/hook-errors.js';
import { startTestUnbound, stopSideBySide } from '../helpers/unbound-side-by-side.js';
import { findPeer, requirePeer } from '../helpers/peers.js';
import { tcpQuery, udpQuery } from '../dns/server/dns-test-client.js';

/** What a query is, byte by byte: header fields, one question (or none), an optional OPT. */
interface RawQuery {
  flags?: number;
  /** The question's name in wire form; null: QDCOUNT 0. */
  qname: Buffer | null;
  qtype?: number;
  qclass?: number;
  opt?: { version?: number; dnssecOk?: boolean; extraFlags?: number; udpSize?: number; options?: Buffer; owner?: Buffer };
  /** Whole records (wire form) in the answer, authority and additional sections (the latter before the OPT). */
  an?: Buffer[];
  ns?: Buffer[];
  ar?: Buffer[];
}

/** An A record for localhost. (wire form), as a client should never put in a query. */
const A_RECORD = Buffer.concat([wireName('localhost'), Buffer.from('000100010000003c00047f000001', 'hex')]);

/** A wire name from presentation labels (no escapes needed in these cases). */
function wireName(...labels: string[]): Buffer {
  return Buffer.concat([...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')])), Buffer.from([0])]);
}

const RD = 0x0100;
const CD = 0x0010;

function build(q: RawQuery, id: number): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(q.flags ?? RD, 2);
  header.writeUInt16BE(q.qname ? 1 : 0, 4);
  header.writeUInt16BE(q.an?.length ?? 0, 6);
  header.writeUInt16BE(q.ns?.length ?? 0, 8);
  header.writeUInt16BE((q.ar?.length ?? 0) + (q.opt ? 1 : 0), 10);
  const parts: Uint8Array[] = [header];
  if (q.qname) {
    const tc = Buffer.alloc(4);
    tc.writeUInt16BE(q.qtype ?? 1, 0);
    tc.writeUInt16BE(q.qclass ?? 1, 2);
    parts.push(q.qname, tc);
  }
  parts.push(...(q.an ?? []), ...(q.ns ?? []), ...(q.ar ?? []));
  if (q.opt) {
    const o = q.opt;
    const options = o.options ?? Buffer.alloc(0);
    const rr = Buffer.alloc(10);
    rr.writeUInt16BE(41, 0);
    rr.writeUInt16BE(o.udpSize ?? 1232, 2);
    rr.writeUInt8(o.version ?? 0, 5);
    rr.writeUInt16BE((o.dnssecOk ? 0x8000 : 0) | (o.extraFlags ?? 0), 6);
    rr.writeUInt16BE(options.length, 8);
    parts.push(o.owner ?? Buffer.from([0]), rr, options);
  }
  return Buffer.concat(parts);
}

/** Offset just past the wire name at `pos` (a pointer ends it). */
function skipName(buf: Buffer, pos: number): number {
  for (let hops = 0; hops < 128; hops++) {
    const len = buf[pos] as number;
    if (len === 0) return pos + 1;
    if ((len & 0xc0) === 0xc0) return pos + 2;
    pos += len + 1;
  }
  throw new Error(`unterminated name at ${pos}`);
}

/**
 * The parts of a reply both servers must agree on, read straight from the bytes (an independent
 * reader, not the codec under test): header bits except RA, the full rcode, the question bytes as
 * sent back (letter case included), the record types per section, and the OPT's version, flags and
 * option bytes (the advertised UDP size is left out).
 */
function facets(reply: Buffer | null): Record<string, unknown> {
  if (reply === null) return { reply: 'none' };
  const flags = reply.readUInt16BE(2);
  const counts = [4, 6, 8, 10].map((o) => reply.readUInt16BE(o));
  let pos = 12;
  for (let i = 0; i < (counts[0] as number); i++) pos = skipName(reply, pos) + 4;
  const question = reply.subarray(12, pos).toString('hex');
  const sections: number[][] = [[], [], []];
  let opt: { version: number; flags: number; rdata: string; extendedRcode: number } | null = null;
  for (let section = 0; section < 3; section++) {
    for (let i = 0; i < (counts[section + 1] as number); i++) {
      const at = skipName(reply, pos);
      const type = reply.readUInt16BE(at);
      const rdlen = reply.readUInt16BE(at + 8);
      if (type === 41) {
        opt = { extendedRcode: reply[at + 4] as number, version: reply[at + 5] as number, flags: reply.readUInt16BE(at + 6), rdata: reply.subarray(at + 10, at + 10 + rdlen).toString('hex') };
      } else {
        (sections[section] as number[]).push(type);
      }
      pos = at + 10 + rdlen;
    }
  }
  return {
    id: reply.readUInt16BE(0),
    bits: { qr: (flags & 0x8000) !== 0, aa: (flags & 0x0400) !== 0, tc: (flags & 0x0200) !== 0, rd: (flags & 0x0100) !== 0, z: (flags & 0x0040) !== 0, ad: (flags & 0x0020) !== 0, cd: (flags & 0x0010) !== 0 },
    opcode: (flags >> 11) & 0xf,
    rcode: (flags & 0xf) | ((opt?.extendedRcode ?? 0) << 4),
    question,
    types: sections,
    opt: opt ? { version: opt.version, flags: opt.flags, rdata: opt.rdata } : null,
  };
}

const QNAME = wireName('localhost');
const OPT = { udpSize: 1232 };

/**
 * The cases: each is sent to both servers over UDP and TCP (unless udpOnly) and compared. With
 * `unreadable`, the question is not compared: Unbound sends a malformed query's bytes back as they
 * came, mxsentry leaves out a question it could not read (the rest must still agree). With
 * `echoed`, the sections and TC are not compared (see below).
 */
const CASES: Array<{ what: string; query: RawQuery; udpOnly?: boolean; unreadable?: boolean; echoed?: boolean }> = [
  { what: 'plain localhost A, no EDNS: no OPT', query: { qname: QNAME }},
  { what: 'EDNS 0: OPT version 0', query: { qname: QNAME, opt: OPT }},
  { what: 'letter case of the question kept', query: { qname: wireName('LocalHost'), opt: OPT }},
  { what: 'EDNS version 1: BADVERS with OPT version 0', query: { qname: QNAME, opt: { version: 1 } }},
  { what: 'EDNS version 1 with DO and an unknown option: BADVERS, DO kept, no option echoed', query: { qname: QNAME, opt: { version: 1, dnssecOk: true, options: Buffer.from('0064000100', 'hex') } } },
  { what: 'unknown EDNS option 100: ignored, not echoed', query: { qname: QNAME, opt: { options: Buffer.from('00640004deadbeef', 'hex') } } },
  { what: 'NSID and a client cookie: ignored', query: { qname: QNAME, opt: { options: Buffer.from('00030000000a00080102030405060708', 'hex') } } },
  { what: 'unknown EDNS flags: not echoed, DO is', query: { qname: QNAME, opt: { dnssecOk: true, extraFlags: 0x7fff } } },
  { what: 'client UDP size 100: treated as 512', query: { qname: QNAME, opt: { udpSize: 100 } } },
  { what: 'RD=0: local data still answered, RD clear', query: { flags: 0, qname: QNAME, opt: OPT } },
  { what: 'CD=1 is echoed', query: { flags: RD | CD, qname: QNAME, opt: OPT } },
  { what: 'local NXDOMAIN under test.', query: { qname: wireName('host', 'test'), opt: OPT }},
  { what: 'a 63-octet label under test.', query: { qname: wireName('a'.repeat(63), 'test'), opt: OPT }},
  { what: 'a 255-octet name under test.', query: { qname: wireName('b'.repeat(63), 'c'.repeat(63), 'd'.repeat(63), 'e'.repeat(56), 'test'), opt: OPT }},
  { what: 'opcode STATUS with DO: NOTIMP, DO kept', query: { flags: RD | (2 << 11), qname: QNAME, opt: { dnssecOk: true } } },
  { what: 'opcode 15 without EDNS: NOTIMP, no OPT', query: { flags: RD | (15 << 11), qname: QNAME } },
  { what: 'QDCOUNT 0 with OPT: FORMERR with OPT', query: { qname: null, opt: OPT } },
  { what: 'qtype OPT: FORMERR', query: { qname: QNAME, qtype: 41, opt: OPT } },
  { what: 'qtype TSIG: FORMERR', query: { qname: QNAME, qtype: 250, opt: { dnssecOk: true } } },
  { what: 'meta-type 128: FORMERR', query: { qname: QNAME, qtype: 128, opt: OPT } },
  { what: 'AXFR: REFUSED', query: { qname: QNAME, qtype: 252, opt: OPT } },
  { what: 'IXFR: REFUSED', query: { qname: QNAME, qtype: 251 } },
  { what: 'class HS with DO: REFUSED, DO kept', query: { qname: QNAME, qclass: 4, opt: { dnssecOk: true } } },
  { what: 'class NONE: REFUSED', query: { qname: QNAME, qclass: 254 } },
  { what: 'a qname that points into the header: FORMERR', query: { qname: Buffer.from([0xc0, 0x04]) }, unreadable: true },
  { what: 'a label of 64 octets: FORMERR', query: { qname: wireName('a'.repeat(64), 'test') }, unreadable: true },
  { what: 'a label of 64 octets with DO: FORMERR with an OPT, DO kept', query: { qname: wireName('a'.repeat(64), 'test'), opt: { dnssecOk: true } }, unreadable: true },
  { what: 'an OPT owned by a non-root name: FORMERR with an OPT', query: { qname: QNAME, opt: { owner: wireName('x') } } },
  { what: 'a response (QR=1): no reply', query: { flags: 0x8000 | RD, qname: QNAME }, udpOnly: true },
  { what: 'opcode NOTIFY: REFUSED', query: { flags: 0x0400 | (4 << 11), qname: QNAME, qtype: 6, opt: OPT } },
  { what: 'TC set in the query: FORMERR', query: { flags: RD | 0x0200, qname: QNAME, opt: OPT }, echoed: true },
  { what: 'an answer record in the query: FORMERR', query: { qname: QNAME, an: [A_RECORD], opt: OPT }, echoed: true },
  { what: 'an authority record (as dig IXFR=N sends its SOA): FORMERR', query: { qname: QNAME, ns: [A_RECORD] }, echoed: true },
  { what: 'an additional record other than the OPT: FORMERR', query: { qname: QNAME, ar: [A_RECORD], opt: OPT }, echoed: true },
];

const s = suite('e2e/dns-unbound-parity');
const registry = new ResourceRegistry();
process.on('exit', () => registry.killAllNow());
let tree: SharedPortTree | null = null;
let daemon: RunningDaemon | null = null;
let unbound: ResolverInstance | null = null;
let dir: string | null = null;

s.before(loggedHook(async () => {
  // Without the peer the test body prints the skip (or fails under CI=true); start nothing.
  if (!findPeer('unbound') || !findPeer('unbound-checkconf')) return;
  tree = await startSharedPortTree(standardTree());
  daemon = await spawnDaemon({ upstreamPort: tree.port, rootHints: tree.rootHints });
  dir = mkdtempSync(join(tmpdir(), 'mxsentry-unbound-'));
  writeFileSync(join(dir, 'root.hints'), tree.rootHints);
  // Unbound reaches authorities on port 53 only; no case here makes it ask one.
  unbound = await startTestUnbound(dir, registry);
}));

s.after(() => stopSideBySide({ registry, daemon, tree, dir }));

s('corner-case queries get the same rcode, flags and OPT from mxsentry as from Unbound, over UDP and TCP', async () => {
  if (!requirePeer('unbound', 'Unbound parity') || !requirePeer('unbound-checkconf', 'Unbound parity')) return;
  assert.ok(daemon && unbound, 'mxsentry and Unbound started (see the before hook error)');
  let id = 0x2000;
  for (const c of CASES) {
    for (const transport of c.udpOnly ? ['udp'] : ['udp', 'tcp']) {
      const bytes = build(c.query, ++id);
      const ask = (port: number): Promise<Buffer | null> => (transport === 'udp' ? udpQuery(port, bytes, 1500) : tcpQuery(port, bytes));
      const [mine, theirs] = [await ask(daemon.port), await ask(unbound.port)];
      const compared = (r: Buffer | null): Record<string, unknown> => {
        const f = facets(r);
        if (c.unreadable) delete f.question;
        // Unbound sends such a query back as it came, with QR and the rcode set (its TC bit and
        // records included); mxsentry answers with the question and OPT only.
        if (c.echoed && f.bits) {
          delete f.types;
          delete (f.bits as Record<string, boolean>).tc;
        }
        return f;
      };
      assert.equal(compared(mine), compared(theirs), `${c.what} (${transport})`);
    }
  }
});

s.run();
