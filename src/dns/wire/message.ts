// The DNS message codec: our own structural walk of RFC 1035 section 4 (decode), an encoder with
// name compression and truncation, FORMERR/REFUSED replies built from raw bytes (the packet
// cache's fast query key is query-key.ts). Called by dns/server, dns/transport, dns/cache and dns/iterator.
// Must never allocate from header counts, never throw anything but DnsError on network input, and
// never compress names inside rdata of types other than the RFC 1035 ones (RFC 3597 section 4).
import { randomInt } from 'node:crypto';
import { DnsError } from '../../util/errors.js';
import { canonicalName, readWireName, wireLength } from './name.js';
import type { EncodedMessage, Flags, Message, Name, Question, ResourceRecord } from './types.js';

const HEADER = 12;
const BACKSLASH = 0x5c;
const DOT = 0x2e;
/** FNV-1a basis xor a per-process random value: suffix hashes cannot be chosen to collide offline. */
const SUFFIX_HASH_SEED = (0x811c9dc5 ^ randomInt(0x40000000)) >>> 0;
const TYPE_OPT = 41;
const MAX_MESSAGE = 65535;
/** Compression pointers carry 14 bits of offset. */
const MAX_POINTER_TARGET = 0x3fff;
/** readWireName options for names inside a whole message: no pointer reaches into the header. */
const IN_MESSAGE = { pointerFloor: HEADER } as const;
/** Default EDNS buffer we advertise in error replies (DNS flag day 2020). */
const ERROR_REPLY_UDP_SIZE = 1232;

/**
 * Layout of rdata that contains domain names: 'n' is a name, a number is that many fixed bytes.
 * RFC 1035 types plus those RFC 3597 section 4 says receivers should decompress (RP, AFSDB, RT,
 * PX, SRV, DNAME (RFC 6672), KX (RFC 2230)).
 */
const NAME_LAYOUTS: ReadonlyMap<number, readonly ('n' | number)[]> = new Map<number, ('n' | number)[]>([
  [2, ['n']], // NS
  [3, ['n']], // MD
  [4, ['n']], // MF
  [5, ['n']], // CNAME
  [6, ['n', 'n', 20]], // SOA
  [7, ['n']], // MB
  [8, ['n']], // MG
  [9, ['n']], // MR
  [12, ['n']], // PTR
  [14, ['n', 'n']], // MINFO
  [15, [2, 'n']], // MX
  [17, ['n', 'n']], // RP
  [18, [2, 'n']], // AFSDB
  [21, [2, 'n']], // RT
  [26, [2, 'n', 'n']], // PX
  [33, [6, 'n']], // SRV
  [36, [2, 'n']], // KX
  [39, ['n']], // DNAME
]);

/** RFC 1035 types whose rdata names may be compressed on output (RFC 3597 section 4). */
const COMPRESSIBLE_RDATA = new Set([2, 3, 4, 5, 6, 7, 8, 9, 12, 14, 15]);

function formerr(message: string, cause?: unknown): DnsError {
  return new DnsError('DNS_ERR_FORMERR', message, cause === undefined ? undefined : { cause });
}

function flagsFromWord(w: number): Flags {
  return {
    qr: (w & 0x8000) !== 0,
    opcode: (w >> 11) & 0xf,
    aa: (w & 0x0400) !== 0,
    tc: (w & 0x0200) !== 0,
    rd: (w & 0x0100) !== 0,
    ra: (w & 0x0080) !== 0,
    z: (w & 0x0040) !== 0,
    ad: (w & 0x0020) !== 0,
    cd: (w & 0x0010) !== 0,
  };
}

function flagsToWord(f: Flags, rcode: number): number {
  return (
    (f.qr ? 0x8000 : 0) |
    ((f.opcode & 0xf) << 11) |
    (f.aa ? 0x0400 : 0) |
    (f.tc ? 0x0200 : 0) |
    (f.rd ? 0x0100 : 0) |
    (f.ra ? 0x0080 : 0) |
    (f.z ? 0x0040 : 0) |
    (f.ad ? 0x0020 : 0) |
    (f.cd ? 0x0010 : 0) |
    (rcode & 0xf)
  );
}

/** Big-endian u16 at `off` (callers check bounds). Also for query-key.ts. */
export function u16(buf: Uint8Array, off: number): number {
  return ((buf[off] as number) << 8) | (buf[off + 1] as number);
}

function u32(buf: Uint8Array, off: number): number {
  return (((buf[off] as number) << 24) | ((buf[off + 1] as number) << 16) | ((buf[off + 2] as number) << 8) | (buf[off + 3] as number)) >>> 0;
}

/** Header fields, or null when the buffer is shorter than a header. `rcode` is the 4 header bits. */
export function peekHeader(buf: Uint8Array): {
  id: number;
  flags: Flags;
  rcode: number;
  qdcount: number;
  ancount: number;
  nscount: number;
  arcount: number;
} | null {
  if (buf.length < HEADER) return null;
  const w = u16(buf, 2);
  return {
    id: u16(buf, 0),
    flags: flagsFromWord(w),
    rcode: w & 0xf,
    qdcount: u16(buf, 4),
    ancount: u16(buf, 6),
    nscount: u16(buf, 8),
    arcount: u16(buf, 10),
  };
}

/** Validates the (code, length, data)* option list of an OPT record (RFC 6891 section 6.1.2). */
function optionsWellFormed(buf: Uint8Array, start: number, end: number): boolean {
  let pos = start;
  while (pos < end) {
    if (pos + 4 > end) return false;
    pos += 4 + u16(buf, pos + 2);
  }
  return pos === end;
}

/**
 * Re-emits name-bearing rdata uncompressed (names expanded, case kept) and checks it has exactly
 * the type's structure; names may point anywhere earlier in the message.
 */
function expandRdata(buf: Uint8Array, start: number, end: number, layout: readonly ('n' | number)[], type: number): Buffer {
  const parts: Buffer[] = [];
  let pos = start;
  for (const field of layout) {
    if (field === 'n') {
      const { name, end: nameEnd } = readWireName(buf, pos, IN_MESSAGE);
      if (nameEnd > end) throw formerr(`name in rdata of type ${type} at ${pos} runs past the rdata`);
      const wl = wireLength(name);
      // Uncompressed as received: copy the bytes; otherwise rebuild from the expanded name.
      parts.push(nameEnd - pos === wl ? Buffer.from(buf.subarray(pos, nameEnd)) : nameWire(name, wl));
      pos = nameEnd;
    } else {
      if (pos + field > end) throw formerr(`rdata of type ${type} at ${start} is too short`);
      parts.push(Buffer.from(buf.subarray(pos, pos + field)));
      pos += field;
    }
  }
  if (pos !== end) throw formerr(`rdata of type ${type} at ${start} has ${end - pos} extra bytes`);
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
}

/**
 * Labels (as byte arrays, root excluded) of a wire name; null when it is not a plain
 * uncompressed name ending within the buffer.
 */
function wireLabels(buf: Uint8Array, pos: number): { labels: Array<[number, number]>; end: number } | null {
  const labels: Array<[number, number]> = [];
  for (;;) {
    const l = buf[pos];
    if (l === undefined || l > 63) return null;
    if (l === 0) return { labels, end: pos + 1 };
    if (pos + 1 + l > buf.length) return null;
    labels.push([pos + 1, l]);
    pos += l + 1;
  }
}

/**
 * Gives the names inside a record's rdata back the case of the name we asked, where the answering
 * server copied our 0x20-randomised question into them (name compression does that: an MX or CNAME
 * target under the question's name). Only trailing labels equal byte for byte to the randomised
 * ones are rewritten, so a case the server's own data carries is kept. In place; other rdata untouched.
 * `s` and `o`: the wire forms of the name we sent and of the original (nameToWire, once per response).
 */
export function restoreRdataCase(type: number, rdata: Buffer, s: Buffer, o: Buffer): void {
  rdataCaseRestorer(s, o)(type, rdata);
}

/** restoreRdataCase for every record of one response: the sent name's labels are read once. */
export function rdataCaseRestorer(s: Buffer, o: Buffer): (type: number, rdata: Buffer) => void {
  const sentLabels = wireLabels(s, 0)?.labels ?? [];
  return (type, rdata) => restoreWith(type, rdata, s, o, sentLabels);
}

function restoreWith(type: number, rdata: Buffer, s: Buffer, o: Buffer, sentLabels: ReadonlyArray<[number, number]>): void {
  const layout = NAME_LAYOUTS.get(type);
  if (!layout) return;
  let pos = 0;
  for (const field of layout) {
    if (field !== 'n') {
      pos += field;
      continue;
    }
    const name = wireLabels(rdata, pos);
    if (!name) return;
    for (let i = name.labels.length - 1, j = sentLabels.length - 1; i >= 0 && j >= 0; i--, j--) {
      const [at, len] = name.labels[i]!;
      const [sat, slen] = sentLabels[j]!;
      if (len !== slen || Buffer.compare(rdata.subarray(at, at + len), s.subarray(sat, sat + slen)) !== 0) break;
      o.copy(rdata, at, sat, sat + slen);
    }
    pos = name.end;
  }
}

/** Wire form of a Name produced by readWireName (trusted, so no validation). */
function nameWire(name: Name, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  const w = new Writer(out);
  w.writeName(name, false, false);
  return out;
}

/**
 * Decodes a whole message with our own walk of the wire format.
 * RR TTLs with the top bit set are read as 0 (RFC 2181 section 8).
 * @throws DnsError DNS_ERR_FORMERR with a precise message on anything malformed: counts that
 *   cannot fit, truncated or bad names, bad rdata structure, misplaced/duplicate/non-root OPT,
 *   malformed OPT options, trailing bytes after the last record.
 */
export function decodeMessage(buf: Uint8Array): Message {
  const h = peekHeader(buf);
  if (!h) throw formerr(`message of ${buf.length} bytes is shorter than the 12-byte header`);
  const rrCount = h.ancount + h.nscount + h.arcount;
  // Smallest question: root name + type + class = 5 bytes; smallest RR: 11 bytes.
  if (h.qdcount * 5 + rrCount * 11 > buf.length - HEADER) {
    throw formerr(`header counts (qd=${h.qdcount} an=${h.ancount} ns=${h.nscount} ar=${h.arcount}) cannot fit in ${buf.length} bytes`);
  }
  let pos = HEADER;
  const questions: Question[] = [];
  for (let i = 0; i < h.qdcount; i++) {
    const { name, end } = readWireName(buf, pos, IN_MESSAGE);
    if (end + 4 > buf.length) throw formerr(`question ${i} is truncated`);
    questions.push({ name, type: u16(buf, end), class: u16(buf, end + 2) });
    pos = end + 4;
  }
  const answers: ResourceRecord[] = [];
  const authorities: ResourceRecord[] = [];
  const additionals: ResourceRecord[] = [];
  let edns: Message['edns'] = null;
  let rcode = h.rcode;
  for (let i = 0; i < rrCount; i++) {
    const section = i < h.ancount ? answers : i < h.ancount + h.nscount ? authorities : additionals;
    const { name, end } = readWireName(buf, pos, IN_MESSAGE);
    if (end + 10 > buf.length) throw formerr(`record ${i} header is truncated`);
    const type = u16(buf, end);
    const klass = u16(buf, end + 2);
    const ttlRaw = u32(buf, end + 4);
    const rdlen = u16(buf, end + 8);
    const rdStart = end + 10;
    const rdEnd = rdStart + rdlen;
    if (rdEnd > buf.length) throw formerr(`rdata of record ${i} (type ${type}) runs past the end of the message`);
    pos = rdEnd;
    if (type === TYPE_OPT) {
      // RFC 6891 section 6.1.1: one OPT, in the additional section, owned by the root.
      if (section !== additionals) throw formerr('OPT record outside the additional section');
      if (edns) throw formerr('more than one OPT record');
      if (name !== '.') throw formerr('OPT record with a non-root owner name');
      if (!optionsWellFormed(buf, rdStart, rdEnd)) throw formerr('malformed EDNS options in OPT record');
      rcode = ((ttlRaw >>> 24) << 4) | h.rcode;
      edns = {
        udpSize: klass,
        version: (ttlRaw >>> 16) & 0xff,
        dnssecOk: (ttlRaw & 0x8000) !== 0,
        options: Buffer.from(buf.subarray(rdStart, rdEnd)),
      };
      continue;
    }
    const layout = NAME_LAYOUTS.get(type);
    const rdata = layout ? expandRdata(buf, rdStart, rdEnd, layout, type) : Buffer.from(buf.subarray(rdStart, rdEnd));
    section.push({ name, type, class: klass, ttl: ttlRaw > 0x7fffffff ? 0 : ttlRaw, rdata });
  }
  if (pos !== buf.length) throw formerr(`${buf.length - pos} bytes of trailing data after the last record`);
  return { id: h.id, flags: h.flags, rcode, questions, answers, authorities, additionals, edns };
}

/** Output buffer with name compression state (canonical suffix -> offset). */
class Writer {
  off = 0;
  /**
   * Compression targets: hash of a canonical wire suffix -> offset where it was first written
   * (RFC 1035 section 4.1.4). Numbers, not strings, as keys: a name costs no substring or string
   * hash per label. A lookup always compares the bytes; suffixes whose hashes collide share a key,
   * the later ones kept in `collided`, so a collision costs a comparison, never compression.
   */
  private readonly comp = new Map<number, number>();
  private collided: Map<number, number[]> | undefined;
  /** Scratch of the name being written: where each label starts, and each suffix's hash. */
  private readonly labelAt: number[] = [];
  private readonly suffixHash: number[] = [];
  constructor(readonly buf: Buffer) {}

  u8(v: number): void {
    this.buf[this.off++] = v;
  }
  u16(v: number): void {
    this.buf.writeUInt16BE(v & 0xffff, this.off);
    this.off += 2;
  }
  u32(v: number): void {
    this.buf.writeUInt32BE(v >>> 0, this.off);
    this.off += 4;
  }
  bytes(b: Uint8Array): void {
    this.buf.set(b, this.off);
    this.off += b.length;
  }

  /**
   * Writes an escaped Name. With `compress`, the longest already-written suffix (equal in
   * canonical form, RFC 1035 section 4.1.4 and RFC 4343) becomes a pointer; with `register`,
   * suffixes written here become pointer targets.
   */
  writeName(name: Name, compress: boolean, register: boolean): void {
    const labels = this.labelAt;
    labels.length = 0;
    if (name === '.') {
      this.u8(0);
      return;
    }
    // The name goes out uncompressed first; finishName then cuts it at the longest known suffix.
    let lenAt = this.off++;
    labels.push(lenAt);
    const last = name.length - 1;
    let absolute = false;
    for (let i = 0; i <= last; i++) {
      const c = name.charCodeAt(i);
      if (c === DOT) {
        this.closeLabel(name, lenAt);
        if (i === last) {
          absolute = true;
          break;
        }
        lenAt = this.off++;
        labels.push(lenAt);
      } else if (c === BACKSLASH) {
        const next = name.charCodeAt(i + 1);
        if (next >= 0x30 && next <= 0x39) {
          this.buf[this.off++] = Number(name.slice(i + 1, i + 4));
          i += 3;
        } else {
          this.buf[this.off++] = next;
          i += 1;
        }
      } else {
        this.buf[this.off++] = c;
      }
    }
    // A Name is absolute: '' or 'a.b' (no final, unescaped dot) is a caller's bug, not a name.
    if (!absolute) throw new DnsError('DNS_ERR_BAD_NAME', `cannot encode name ${JSON.stringify(name)}: not an absolute name (no final dot)`);
    this.buf[this.off++] = 0;
    this.finishName(compress, register);
  }

  private closeLabel(name: Name, lenAt: number): void {
    const len = this.off - lenAt - 1;
    if (len === 0 || len > 63) throw new DnsError('DNS_ERR_BAD_NAME', `cannot encode name ${JSON.stringify(name)}: label of ${len} bytes`);
    this.buf[lenAt] = len;
  }

  /**
   * Copies an uncompressed wire name from rdata (checked by wireNameEnd) and compresses it as
   * writeName does; returns the offset in `src` after it.
   */
  writeWireName(src: Uint8Array, pos: number, register: boolean): number {
    const labels = this.labelAt;
    labels.length = 0;
    for (;;) {
      const len = src[pos] as number;
      if (len === 0) break;
      labels.push(this.off);
      this.buf.set(src.subarray(pos, pos + 1 + len), this.off);
      this.off += 1 + len;
      pos += 1 + len;
    }
    this.buf[this.off++] = 0;
    this.finishName(true, register);
    return pos + 1;
  }

  /**
   * The name whose labels start at labelAt is written uncompressed up to `off`. Replaces its longest
   * suffix already written elsewhere by a pointer there (when `compress`), and registers the
   * suffixes left in place (when `register`, and a pointer can reach them).
   */
  private finishName(compress: boolean, register: boolean): void {
    if (!compress && !register) return;
    const labels = this.labelAt;
    const hashes = this.suffixHash;
    const buf = this.buf;
    const n = labels.length;
    // Suffix hashes right to left, over the canonical (lower-case ASCII) bytes with length bytes.
    let h = SUFFIX_HASH_SEED;
    for (let li = n - 1; li >= 0; li--) {
      const at = labels[li] as number;
      const end = at + 1 + (buf[at] as number);
      for (let k = at; k < end; k++) {
        let b = buf[k] as number;
        if (b >= 0x41 && b <= 0x5a) b |= 0x20;
        h = Math.imul(h ^ b, 16777619);
      }
      hashes[li] = h & 0x3fffffff;
    }
    let cut = n;
    let pointTo = 0;
    if (compress) {
      for (let li = 0; li < n; li++) {
        const target = this.target(hashes[li] as number, labels[li] as number);
        if (target >= 0) {
          cut = li;
          pointTo = target;
          break;
        }
      }
    }
    if (register) {
      for (let li = 0; li < cut; li++) {
        const at = labels[li] as number;
        if (at > MAX_POINTER_TARGET) break;
        const key = hashes[li] as number;
        if (!this.comp.has(key)) {
          this.comp.set(key, at);
        } else if (compress || this.target(key, at) < 0) {
          // Not a target yet (the search above found none, or this check): another suffix with this
          // hash. First writer wins for equal suffixes; colliding ones are kept beside it.
          const others = (this.collided ??= new Map<number, number[]>()).get(key);
          if (others) others.push(at);
          else this.collided.set(key, [at]);
        }
      }
    }
    if (cut < n) {
      const at = labels[cut] as number;
      buf[at] = 0xc0 | (pointTo >> 8);
      buf[at + 1] = pointTo & 0xff;
      this.off = at + 2;
    }
  }

  /** Where the suffix at `at` (hashed `key`) was written before, or -1. */
  private target(key: number, at: number): number {
    const first = this.comp.get(key);
    if (first === undefined) return -1;
    if (sameWireSuffix(this.buf, at, first)) return first;
    for (const other of this.collided?.get(key) ?? []) if (sameWireSuffix(this.buf, at, other)) return other;
    return -1;
  }

  /**
   * Writes rdata. Name-bearing types are walked so their names can be compressed (RFC 1035
   * types only) or at least be pointer targets; anything else is copied verbatim.
   */
  writeRdata(type: number, rdata: Buffer, register = true): void {
    const layout = COMPRESSIBLE_RDATA.has(type) ? NAME_LAYOUTS.get(type) : undefined;
    // rdata that does not have its type's structure cannot be compressed: it goes out verbatim,
    // exactly as it came in (the decoder never produces such rdata).
    if (!layout || !fitsLayout(rdata, layout)) {
      this.bytes(rdata);
      return;
    }
    let pos = 0;
    for (const field of layout) {
      if (field === 'n') {
        pos = this.writeWireName(rdata, pos, register);
      } else {
        this.bytes(rdata.subarray(pos, pos + field));
        pos += field;
      }
    }
  }
}

/** Whether the uncompressed name at `a` equals (ASCII case-insensitively) the name at `b`, whose labels may end in a pointer. */
function sameWireSuffix(buf: Uint8Array, a: number, b: number): boolean {
  for (let hops = 0; ; ) {
    let lb = buf[b] as number;
    while ((lb & 0xc0) === 0xc0) {
      if (++hops > 127) return false;
      b = ((lb & 0x3f) << 8) | (buf[b + 1] as number);
      lb = buf[b] as number;
    }
    const la = buf[a] as number;
    if (la !== lb) return false;
    if (la === 0) return true;
    for (let k = 1; k <= la; k++) {
      let x = buf[a + k] as number;
      let y = buf[b + k] as number;
      if (x >= 0x41 && x <= 0x5a) x |= 0x20;
      if (y >= 0x41 && y <= 0x5a) y |= 0x20;
      if (x !== y) return false;
    }
    a += la + 1;
    b += lb + 1;
  }
}

/** Whether rdata is exactly its layout: fixed fields, and uncompressed names (labels <= 63 bytes, <= 255 in all). */
function fitsLayout(rdata: Uint8Array, layout: readonly ('n' | number)[]): boolean {
  let pos = 0;
  for (const field of layout) {
    if (field !== 'n') {
      pos += field;
      if (pos > rdata.length) return false;
      continue;
    }
    const start = pos;
    for (;;) {
      if (pos >= rdata.length) return false;
      const len = rdata[pos] as number;
      if (len > 63) return false; // a pointer or an extended label type: not an uncompressed name
      pos += 1 + len;
      if (pos - start > 255) return false;
      if (len === 0) break;
    }
  }
  return pos === rdata.length;
}

function checkedWireLength(name: Name): number {
  const n = wireLength(name);
  if (n > 255) throw new DnsError('DNS_ERR_BAD_NAME', `cannot encode name ${JSON.stringify(name)}: ${n} bytes in wire form`);
  return n;
}

interface EncodeParts {
  withAdditional: boolean;
  withRecords: boolean;
  /** See encodeMessage's `rotatable`. */
  rotatable?: boolean;
}

function encodeParts(msg: Message, parts: EncodeParts, tc: boolean): Omit<EncodedMessage, 'truncated'> {
  const answers = parts.withRecords ? msg.answers : [];
  const authorities = parts.withRecords ? msg.authorities : [];
  const additionals = parts.withRecords && parts.withAdditional ? msg.additionals : [];
  let bound = HEADER;
  for (const q of msg.questions) bound += checkedWireLength(q.name) + 4;
  for (const list of [answers, authorities, additionals]) {
    for (const rr of list) bound += checkedWireLength(rr.name) + 10 + rr.rdata.length;
  }
  if (msg.edns) bound += 11 + msg.edns.options.length;
  const arcount = additionals.length + (msg.edns ? 1 : 0);
  for (const [what, n] of [['questions', msg.questions.length], ['answers', answers.length], ['authorities', authorities.length], ['additionals', arcount]] as const) {
    if (n > 0xffff) throw new DnsError('DNS_ERR_TOO_BIG', `cannot encode ${n} ${what} (at most 65535)`);
  }
  if (msg.rcode > 0xf && !msg.edns) {
    throw new DnsError('DNS_ERR_BAD_RCODE', `rcode ${msg.rcode} needs EDNS (RFC 6891 extended rcode) but the message has none`);
  }
  if (msg.rcode < 0 || msg.rcode > 0xfff) throw new DnsError('DNS_ERR_BAD_RCODE', `rcode ${msg.rcode} out of range`);

  const w = new Writer(Buffer.allocUnsafe(bound));
  w.u16(msg.id);
  w.u16(flagsToWord({ ...msg.flags, tc: msg.flags.tc || tc }, msg.rcode));
  w.u16(msg.questions.length);
  w.u16(answers.length);
  w.u16(authorities.length);
  w.u16(arcount);
  for (const q of msg.questions) {
    w.writeName(q.name, true, true);
    w.u16(q.type);
    w.u16(q.class);
  }
  const ttlOffsets: number[] = [];
  const runs: number[][] = [];
  for (const list of [answers, authorities, additionals]) {
    for (let i = 0; i < list.length; i++) {
      const rr = list[i] as ResourceRecord;
      // An answer RRset of 2+ records, for rotation: its names point out of it, never into it.
      const rotating = parts.rotatable === true && list === answers;
      const joinsPrev = rotating && sameRRset(rr, list[i - 1]);
      const joinsNext = rotating && sameRRset(rr, list[i + 1]);
      const inRun = joinsPrev || joinsNext;
      if (inRun) {
        if (!joinsPrev) runs.push([]);
        runs[runs.length - 1]?.push(w.off);
      }
      w.writeName(rr.name, true, !inRun);
      w.u16(rr.type);
      w.u16(rr.class);
      ttlOffsets.push(w.off);
      // RFC 2181 section 8: TTLs are 0..2^31-1.
      w.u32(Math.min(Math.max(Math.floor(rr.ttl), 0), 0x7fffffff));
      const lenAt = w.off;
      w.off += 2;
      w.writeRdata(rr.type, rr.rdata, !inRun);
      const rdlen = w.off - lenAt - 2;
      if (rdlen > 0xffff) throw new DnsError('DNS_ERR_TOO_BIG', `rdata of ${rdlen} bytes`);
      w.buf.writeUInt16BE(rdlen, lenAt);
      if (inRun && !joinsNext) runs[runs.length - 1]?.push(w.off);
    }
  }
  if (msg.edns) {
    const e = msg.edns;
    w.u8(0);
    w.u16(TYPE_OPT);
    w.u16(e.udpSize);
    // RFC 6891 section 6.1.3: EXTENDED-RCODE (upper 8 of 12 bits), VERSION, DO, Z.
    w.u32((((msg.rcode >> 4) & 0xff) << 24) | ((e.version & 0xff) << 16) | (e.dnssecOk ? 0x8000 : 0));
    w.u16(e.options.length);
    w.bytes(e.options);
  }
  return { bytes: Buffer.from(w.buf.subarray(0, w.off)), ttlOffsets, ...(parts.rotatable ? { rrsetRuns: runs } : {}) };
}

function sameRRset(a: ResourceRecord, b: ResourceRecord | undefined): boolean {
  return b !== undefined && a.type === b.type && a.class === b.class && canonicalName(a.name) === canonicalName(b.name);
}

/**
 * Encodes a message with name compression. With `maxSize` (and always at 65535), an oversized
 * message first loses its additional section (OPT kept, no TC, RFC 2181 section 9); if still
 * too big, only header, question and OPT remain and TC is set. With `rotatable`, names inside an
 * answer RRset of 2+ records are not compression targets, and rrsetRuns says where those RRsets are.
 * @throws DnsError DNS_ERR_BAD_NAME (unencodable name), DNS_ERR_TOO_BIG (section over 65535
 *   records), DNS_ERR_BAD_RCODE (rcode > 15 without EDNS).
 */
export function encodeMessage(msg: Message, opts?: { maxSize?: number; rotatable?: boolean }): EncodedMessage {
  const maxSize = Math.min(opts?.maxSize ?? MAX_MESSAGE, MAX_MESSAGE);
  const full = encodeParts(msg, { withAdditional: true, withRecords: true, rotatable: opts?.rotatable }, false);
  if (full.bytes.length <= maxSize) return { ...full, truncated: false };
  if (msg.additionals.length > 0) {
    const lean = encodeParts(msg, { withAdditional: false, withRecords: true }, false);
    if (lean.bytes.length <= maxSize) return { ...lean, truncated: false };
  }
  const cut = encodeParts(msg, { withAdditional: false, withRecords: false }, true);
  return { ...cut, truncated: true };
}

/**
 * Builds a reply to a query that could not be (or will not be) answered: FORMERR, REFUSED,
 * NOTIMP, SERVFAIL, BADVERS. Copies ID, opcode, RD and CD, sets QR, and RA when `ra` (the client
 * may recurse: Unbound's error_encode sets it too); carries the question when qdcount is 1 and it
 * is readable; carries an OPT (udp 1232) when the query had a readable one (always when the rcode
 * needs extended bits), with the query's DO bit (RFC 3225 section 3: DO is copied into every
 * response). Null when the header is unreadable or QR=1.
 */
export function encodeErrorResponse(query: Uint8Array, rcode: number, ra = false): Buffer | null {
  const h = peekHeader(query);
  if (!h || h.flags.qr) return null;
  let question: Question | null = null;
  let questionEnd = -1;
  if (h.qdcount === 1) {
    try {
      const { name, end } = readWireName(query, HEADER, IN_MESSAGE);
      if (end + 4 <= query.length) {
        question = { name, type: u16(query, end), class: u16(query, end + 2) };
        questionEnd = end + 4;
      }
    } catch (err) {
      // An unreadable question is expected here (this builds FORMERR replies): answer without it.
      if (!(err instanceof DnsError)) throw err;
    }
  }
  const opt = readableQueryOpt(query, h, questionEnd);
  const msg: Message = {
    id: h.id,
    flags: { qr: true, opcode: h.flags.opcode, aa: false, tc: false, rd: h.flags.rd, ra, z: false, ad: false, cd: h.flags.cd },
    rcode,
    questions: question ? [question] : [],
    answers: [],
    authorities: [],
    additionals: [],
    edns: opt || rcode > 0xf ? { udpSize: ERROR_REPLY_UDP_SIZE, version: 0, dnssecOk: opt?.dnssecOk ?? false, options: Buffer.alloc(0) } : null,
  };
  return encodeMessage(msg).bytes;
}

/**
 * The query's OPT facts, or null when it carries no readable OPT: the common shape (one question,
 * then the OPT ending the packet) is read directly; any other shape (e.g. a cookie-only query with
 * QDCOUNT 0, RFC 7873 section 5.4) takes a full decode, and a query that does not decode is searched
 * for an OPT that ends it (trailingOpt).
 */
function readableQueryOpt(query: Uint8Array, h: NonNullable<ReturnType<typeof peekHeader>>, questionEnd: number): { dnssecOk: boolean } | null {
  if (h.arcount === 0) return null;
  if (questionEnd > 0 && h.ancount === 0 && h.nscount === 0 && h.arcount === 1) {
    const opt = readOpt(query, questionEnd);
    if (opt) return { dnssecOk: (opt.ttl & 0x8000) !== 0 };
  }
  try {
    const edns = decodeMessage(query).edns;
    return edns ? { dnssecOk: edns.dnssecOk } : null;
  } catch (err) {
    if (!(err instanceof DnsError)) throw err;
    return trailingOpt(query);
  }
}

/**
 * The OPT record that ends a query the decoder refused (an unreadable qname, a second OPT, an OPT
 * with a non-root owner): the last place where type 41 is followed by an rdata length reaching
 * exactly the end of the packet, with well-formed options. The FORMERR to such a query carries an
 * OPT: one without would tell the client this server has no EDNS at all (RFC 6891 s7).
 */
function trailingOpt(buf: Uint8Array): { dnssecOk: boolean } | null {
  // An owner name (1 byte at least), then type(2) class(2) ttl(4) rdlength(2) and the rdata.
  for (let t = buf.length - 10; t > HEADER; t--) {
    if (u16(buf, t) !== TYPE_OPT || t + 10 + u16(buf, t + 8) !== buf.length) continue;
    if (!optionsWellFormed(buf, t + 10, buf.length)) continue;
    return { dnssecOk: ((buf[t + 6] as number) & 0x80) !== 0 };
  }
  return null;
}

/** Reads an OPT RR at `pos` that must end the packet; null unless it is well-formed. Also for query-key.ts. */
export function readOpt(buf: Uint8Array, pos: number): { udpSize: number; ttl: number } | null {
  if (pos + 11 > buf.length) return null;
  if (buf[pos] !== 0 || u16(buf, pos + 1) !== TYPE_OPT) return null;
  const rdStart = pos + 11;
  if (rdStart + u16(buf, pos + 9) !== buf.length) return null;
  if (!optionsWellFormed(buf, rdStart, buf.length)) return null;
  return { udpSize: u16(buf, pos + 3), ttl: u32(buf, pos + 5) };
}
