// The DNS message codec: our own structural walk of RFC 1035 section 4 (decode), an encoder with
// truncation (its buffer and name compression are message-writer.ts), FORMERR/REFUSED replies built
// from raw bytes (the packet cache's fast query key is query-key.ts). Called by dns/server,
// dns/transport, dns/cache and dns/iterator. Must never allocate from header counts and never throw
// anything but DnsError on network input.
import { DnsError } from '../../util/errors.js';
import { canonicalName, readWireName, wireLength } from './name.js';
import { NAME_LAYOUTS, Writer } from './message-writer.js';
import type { EncodedMessage, Flags, Message, Name, Question, ResourceRecord } from './types.js';

const HEADER = 12;
const TYPE_OPT = 41;
const MAX_MESSAGE = 65535;
/** readWireName options for names inside a whole message: no pointer reaches into the header. */
const IN_MESSAGE = { pointerFloor: HEADER } as const;
/** Default EDNS buffer we advertise in error replies (DNS flag day 2020). */
const ERROR_REPLY_UDP_SIZE = 1232;

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

function encodeParts(msg: Message, parts: EncodeParts, tc: boolean): EncodedMessage {
  const answers = parts.withRecords ? msg.answers : NO_RECORDS;
  const authorities = parts.withRecords ? msg.authorities : NO_RECORDS;
  const additionals = parts.withRecords && parts.withAdditional ? msg.additionals : NO_RECORDS;
  const sections = [answers, authorities, additionals];
  let bound = HEADER;
  for (const q of msg.questions) bound += checkedWireLength(q.name) + 4;
  for (const list of sections) {
    for (const rr of list) bound += checkedWireLength(rr.name) + 10 + rr.rdata.length;
  }
  if (msg.edns) bound += 11 + msg.edns.options.length;
  const arcount = additionals.length + (msg.edns ? 1 : 0);
  checkCount('questions', msg.questions.length);
  checkCount('answers', answers.length);
  checkCount('authorities', authorities.length);
  checkCount('additionals', arcount);
  if (msg.rcode > 0xf && !msg.edns) {
    throw new DnsError('DNS_ERR_BAD_RCODE', `rcode ${msg.rcode} needs EDNS (RFC 6891 extended rcode) but the message has none`);
  }
  if (msg.rcode < 0 || msg.rcode > 0xfff) throw new DnsError('DNS_ERR_BAD_RCODE', `rcode ${msg.rcode} out of range`);

  const w = new Writer(Buffer.allocUnsafe(bound));
  w.u16(msg.id);
  w.u16(flagsToWord(msg.flags, msg.rcode) | (tc ? 0x0200 : 0));
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
  for (const list of sections) {
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
  const out: EncodedMessage = { bytes: Buffer.from(w.buf.subarray(0, w.off)), ttlOffsets, truncated: tc };
  if (parts.rotatable) out.rrsetRuns = runs;
  return out;
}

const NO_RECORDS: readonly ResourceRecord[] = [];

function checkCount(what: string, n: number): void {
  if (n > 0xffff) throw new DnsError('DNS_ERR_TOO_BIG', `cannot encode ${n} ${what} (at most 65535)`);
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
  if (full.bytes.length <= maxSize) return full;
  if (msg.additionals.length > 0) {
    const lean = encodeParts(msg, { withAdditional: false, withRecords: true }, false);
    if (lean.bytes.length <= maxSize) return lean;
  }
  return encodeParts(msg, { withAdditional: false, withRecords: false }, true);
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
