// Tests for src/dns/wire/message.ts: round trips, compression, malformed input, truncation,
// error replies, the packet-cache query key, and a bounded seeded fuzz over all raw-input paths.
import { randomBytes } from 'node:crypto';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { DnsError } from '../../../src/util/errors.js';
import {
  decodeMessage,
  encodeErrorResponse,
  encodeMessage,
  peekHeader,
} from '../../../src/dns/wire/message.js';
import { readQueryKey } from '../../../src/dns/wire/query-key.js';
import { canonicalName, nameToWire, wireLength } from '../../../src/dns/wire/name.js';
import { rdataFromText } from '../../../src/dns/wire/rdata-from-text.js';
import type { Flags, Message, ResourceRecord } from '../../../src/dns/wire/types.js';
import { seededRandom } from '../../helpers/seeded-random.js';
import { throwsCode } from '../../helpers/assert-error.js';

const s = suite('dns/wire/message');

const NOFLAGS: Flags = { qr: false, opcode: 0, aa: false, tc: false, rd: false, ra: false, z: false, ad: false, cd: false };

function rr(name: string, type: number, text: string, ttl = 300): ResourceRecord {
  return { name, type, class: 1, ttl, rdata: rdataFromText(type, text) };
}

function query(name: string, type: number, opts: { id?: number; edns?: boolean; rd?: boolean; cd?: boolean; dnssecOk?: boolean } = {}): Message {
  return {
    id: opts.id ?? 0x1234,
    flags: { ...NOFLAGS, rd: opts.rd ?? true, cd: opts.cd ?? false },
    rcode: 0,
    questions: [{ name, type, class: 1 }],
    answers: [],
    authorities: [],
    additionals: [],
    edns: opts.edns ? { udpSize: 1232, version: 0, dnssecOk: opts.dnssecOk ?? false, options: Buffer.alloc(0) } : null,
  };
}

const GTLD = 'abcdefghijklm'.split('').map((c) => `${c}.gtld-servers.net.`);

/** A .com referral as the root sends it: 13 NS, 13 A + 13 AAAA glue, EDNS. */
function referral(): Message {
  return {
    id: 7,
    flags: { ...NOFLAGS, qr: true },
    rcode: 0,
    questions: [{ name: 'www.example.com.', type: 1, class: 1 }],
    answers: [],
    authorities: GTLD.map((n) => rr('com.', 2, n, 172800)),
    additionals: [
      ...GTLD.map((n, i) => rr(n, 1, `192.0.2.${i + 1}`, 172800)),
      ...GTLD.map((n, i) => rr(n, 28, `2001:db8::${i + 1}`, 172800)),
    ],
    edns: { udpSize: 1232, version: 0, dnssecOk: false, options: Buffer.alloc(0) },
  };
}

function answer(): Message {
  return {
    id: 0xbeef,
    flags: { ...NOFLAGS, qr: true, aa: true, rd: true, ra: true, ad: true, cd: true },
    rcode: 0,
    questions: [{ name: 'Example.com.', type: 15, class: 1 }],
    answers: [
      rr('Example.com.', 15, '10 mx1.example.com.'),
      rr('Example.com.', 15, '20 mx2.example.net.'),
      rr('Example.com.', 16, '"v=spf1 -all" "second \\"string\\""'),
      rr('_sip._tcp.example.com.', 33, '10 60 5060 sip.example.com.'),
      rr('a\\.b.example.com.', 1, '192.0.2.1'),
      rr('\\255.example.com.', 28, '2001:db8::1'),
      { name: 'example.com.', type: 65534, class: 1, ttl: 1, rdata: Buffer.from([1, 2, 3]) },
    ],
    authorities: [rr('example.com.', 6, 'ns1.example.com. hostmaster.example.com. 2024010101 7200 3600 1209600 300')],
    additionals: [rr('mx1.example.com.', 1, '192.0.2.25')],
    edns: { udpSize: 4096, version: 0, dnssecOk: true, options: Buffer.from([0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]) },
  };
}

s('round trip: encode -> decode -> encode is byte-identical', () => {
  for (const msg of [answer(), referral(), query('www.example.com.', 1, { edns: true }), query('.', 2)]) {
    const a = encodeMessage(msg);
    const d = decodeMessage(a.bytes);
    const b = encodeMessage(d);
    assert.ok(a.bytes.equals(b.bytes), 'byte-identical');
    assert.is(d.id, msg.id);
    assert.equal(d.flags, msg.flags);
    assert.equal(d.questions, msg.questions);
    assert.is(d.answers.length, msg.answers.length);
    assert.equal(d.edns, msg.edns);
  }
});

s('decode keeps names, case and rdata of the original message', () => {
  const msg = answer();
  const d = decodeMessage(encodeMessage(msg).bytes);
  // Compression is case-insensitive, so suffixes carry the question's spelling ('Example.com.').
  assert.is(canonicalName(d.answers[4]!.name), 'a\\.b.example.com.');
  assert.is(d.answers[4]?.name, 'a\\.b.Example.com.');
  assert.is(canonicalName(d.answers[5]!.name), '\\255.example.com.');
  const lower = (r: ResourceRecord): string => r.rdata.toString('latin1').toLowerCase();
  assert.equal(d.answers.map(lower), msg.answers.map(lower));
  assert.equal(d.authorities.map(lower), msg.authorities.map(lower));
  assert.equal(d.answers[6], { ...msg.answers[6]!, name: 'Example.com.' }, 'unknown type rdata kept as-is');
});

s('compression: a referral with many NS names compresses to real root-like sizes', () => {
  const msg = referral();
  const enc = encodeMessage(msg);
  let uncompressed = 12 + wireLength('www.example.com.') + 4 + 11;
  for (const r of [...msg.authorities, ...msg.additionals]) uncompressed += wireLength(r.name) + 10 + r.rdata.length;
  assert.ok(uncompressed > 1232, `uncompressed ${uncompressed} would not fit the EDNS buffer`);
  // Real root servers answer this referral in about 830 bytes.
  assert.ok(enc.bytes.length < 850, `compressed size ${enc.bytes.length}`);
  // The second NS rdata is "b" + pointer: 4 bytes (RFC 1035 types may be compressed).
  const d = decodeMessage(enc.bytes);
  assert.is(d.authorities[1]?.rdata.length, wireLength('b.gtld-servers.net.'), 'decoded rdata is expanded');
  const nsRdlenAt = enc.ttlOffsets[1]! + 4;
  assert.is(enc.bytes.readUInt16BE(nsRdlenAt), 4);
});

s('compression matches case-insensitively; SRV rdata names are never compressed', () => {
  const msg: Message = {
    ...query('EXAMPLE.com.', 33),
    flags: { ...NOFLAGS, qr: true },
    answers: [rr('example.COM.', 2, 'example.com.'), rr('_x._tcp.example.com.', 33, '0 0 1 example.com.')],
  };
  const enc = encodeMessage(msg);
  // Answer 1 owner and NS target both become 2-byte pointers to the question name.
  const nsTtl = enc.ttlOffsets[0]!;
  assert.is(enc.bytes.readUInt16BE(nsTtl - 6) & 0xc000, 0xc000, 'owner compressed');
  assert.is(enc.bytes.readUInt16BE(nsTtl + 4), 2, 'NS rdata is one pointer');
  const srvTtl = enc.ttlOffsets[1]!;
  assert.is(enc.bytes.readUInt16BE(srvTtl + 4), 6 + wireLength('example.com.'), 'SRV target written in full');
  const d = decodeMessage(enc.bytes);
  // The pointer carries the first occurrence's spelling.
  assert.is(d.answers[0]?.name, 'EXAMPLE.com.');
});

s('compression over 1000 distinct MX targets: exact round trip, shared suffixes become pointers, none points past 0x3fff', () => {
  const answers = Array.from({ length: 1000 }, (_, i) => rr('Big.Example.', 15, `${i % 50} mx${i}.MAIL.example.`));
  const msg: Message = { ...query('big.example.', 15), flags: { ...NOFLAGS, qr: true }, answers };
  const enc = encodeMessage(msg);
  assert.ok(enc.bytes.length > 0x4000, `${enc.bytes.length} bytes: names beyond pointer reach exist`);
  const d = decodeMessage(enc.bytes);
  assert.equal(d.answers.map((r) => r.rdata), answers.map((r) => r.rdata), 'every MX rdata back byte for byte');
  assert.ok(d.answers.every((r) => r.name === 'big.example.'), 'owners point at the question (its spelling)');
  // Per record: owner pointer, type, class, TTL, rdlength, preference, the "mxN" label and a
  // pointer to "MAIL.example." (written once, its "example." a pointer into the question).
  const perRecords = answers.reduce((n, _r, i) => n + 2 + 10 + 2 + 1 + `mx${i}`.length + 2, 0);
  const limit = 12 + wireLength('big.example.') + 4 + perRecords + 1 + 'MAIL'.length;
  assert.is(enc.bytes.length, limit, 'every shared suffix compressed');
  assert.equal(encodeMessage(d).bytes, enc.bytes, 'decode then encode gives the same bytes');
  // Names first written past 0x3fff, asked again later: written again, never pointed at (14 bits).
  const late = answers.map((r, i) => (i < 900 ? r : rr('big.example.', 15, `1 mx${i - 100}.MAIL.example.`)));
  const again = decodeMessage(encodeMessage({ ...msg, answers: late }).bytes);
  assert.equal(again.answers.map((r) => r.rdata), late.map((r) => r.rdata));
});

s('name-bearing rdata that is not its type\'s structure is written verbatim, never reinterpreted', () => {
  const bad = Buffer.from([0, 10, 0xc0, 0x0c]); // an MX whose exchange is a pointer: stored rdata never has one
  const msg: Message = { ...query('example.', 15), flags: { ...NOFLAGS, qr: true }, answers: [{ name: 'example.', type: 15, class: 1, ttl: 60, rdata: bad }] };
  const enc = encodeMessage(msg);
  assert.ok(enc.bytes.subarray(enc.bytes.length - 4).equals(bad));
  assert.is(enc.bytes.readUInt16BE(enc.bytes.length - 6), 4, 'rdlength of the verbatim rdata');
});

s('decode expands compressed rdata names and validates name-bearing rdata structure', () => {
  // Hand-built response: question example.com MX, answer MX 10 -> "mail" + pointer to the qname.
  const q = nameToWire('example.com.');
  const head = Buffer.from([0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
  const question = Buffer.concat([q, Buffer.from([0, 15, 0, 1])]);
  const mk = (rdata: number[]): Buffer =>
    Buffer.concat([head, question, Buffer.from([0xc0, 12, 0, 15, 0, 1, 0, 0, 1, 0, 0, rdata.length, ...rdata])]);
  const good = mk([0, 10, 4, ...Buffer.from('mail'), 0xc0, 12]);
  const d = decodeMessage(good);
  assert.equal(d.answers[0]?.rdata, Buffer.concat([Buffer.from([0, 10]), nameToWire('mail.example.com.')]));
  throwsCode(() => decodeMessage(mk([0, 10, 4, ...Buffer.from('mail'), 0xc0, 12, 0])), 'DNS_ERR_FORMERR', /extra bytes/);
  throwsCode(() => decodeMessage(mk([0])), 'DNS_ERR_FORMERR', /too short/);
  // A pointer that leads forward, into the record itself.
  throwsCode(() => decodeMessage(mk([0, 10, 0xc0, 60])), 'DNS_ERR_FORMERR', /backwards/);
});

s('SOA rdata must be exactly two names and 20 bytes', () => {
  const msg: Message = { ...query('example.com.', 6), flags: { ...NOFLAGS, qr: true } };
  const soa = rdataFromText(6, 'ns. host. 1 2 3 4 5');
  for (const [rdata, ok] of [[soa, true], [soa.subarray(0, soa.length - 1), false], [Buffer.concat([soa, Buffer.from([0])]), false]] as const) {
    msg.authorities = [{ name: 'example.com.', type: 6, class: 1, ttl: 60, rdata: Buffer.from(rdata) }];
    const bytes = encodeMessage(msg).bytes;
    if (ok) assert.equal(decodeMessage(bytes).authorities[0]?.rdata, soa);
    else throwsCode(() => decodeMessage(bytes), 'DNS_ERR_FORMERR', /SOA|type 6/);
  }
});

s('OPT: extended rcode merged, only one, only in additional, root owner', () => {
  const msg = query('example.com.', 1, { edns: true });
  msg.flags.qr = true;
  msg.rcode = 16; // BADVERS
  const enc = encodeMessage(msg).bytes;
  assert.is(enc[3]! & 0xf, 0, 'header holds rcode & 15');
  const d = decodeMessage(enc);
  assert.is(d.rcode, 16);
  throwsCode(() => encodeMessage({ ...msg, edns: null }), 'DNS_ERR_BAD_RCODE');

  const opt = Buffer.from([0, 0, 41, 4, 0xd0, 0, 0, 0x80, 0, 0, 0]);
  const base = encodeMessage(query('example.com.', 1)).bytes;
  const withCounts = (b: Buffer, an: number, ar: number): Buffer => {
    const c = Buffer.from(b);
    c.writeUInt16BE(an, 6);
    c.writeUInt16BE(ar, 10);
    return c;
  };
  const one = decodeMessage(withCounts(Buffer.concat([base, opt]), 0, 1));
  assert.equal(one.edns, { udpSize: 1232, version: 0, dnssecOk: true, options: Buffer.alloc(0) });
  throwsCode(() => decodeMessage(withCounts(Buffer.concat([base, opt, opt]), 0, 2)), 'DNS_ERR_FORMERR', /more than one OPT/);
  throwsCode(() => decodeMessage(withCounts(Buffer.concat([base, opt]), 1, 0)), 'DNS_ERR_FORMERR', /outside the additional/);
  const named = Buffer.concat([base, Buffer.from([1, 0x61, 0]), opt.subarray(1)]);
  throwsCode(() => decodeMessage(withCounts(named, 0, 1)), 'DNS_ERR_FORMERR', /non-root/);
  const badOpts = Buffer.concat([base, opt.subarray(0, 9), Buffer.from([0, 3, 0, 10, 0])]);
  throwsCode(() => decodeMessage(withCounts(badOpts, 0, 1)), 'DNS_ERR_FORMERR', /options/);
});

s('trailing garbage, truncation and QR=1 decoding', () => {
  const bytes = encodeMessage(answer()).bytes;
  throwsCode(() => decodeMessage(Buffer.concat([bytes, Buffer.from([0])])), 'DNS_ERR_FORMERR', /trailing/);
  throwsCode(() => decodeMessage(bytes.subarray(0, bytes.length - 1)), 'DNS_ERR_FORMERR');
  throwsCode(() => decodeMessage(bytes.subarray(0, 11)), 'DNS_ERR_FORMERR', /header/);
  assert.ok(decodeMessage(bytes).flags.qr, 'responses decode with QR=1 visible');
});

s('a compression pointer into the header is FORMERR, in the question and in records', () => {
  // A query whose qname is a pointer to offset 4 (QDCOUNT's high byte, 0: the root if followed).
  const header = Buffer.from([0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
  const q = Buffer.concat([header, Buffer.from([0xc0, 0x04, 0x00, 0x01, 0x00, 0x01])]);
  throwsCode(() => decodeMessage(q), 'DNS_ERR_FORMERR', /into the header/);
  const fe = decodeMessage(encodeErrorResponse(q, 1)!);
  assert.is(fe.questions.length, 0, 'the FORMERR reply does not echo a question it could not read');
  // An answer record whose owner points into the header.
  const bytes = Buffer.from(encodeMessage(answer()).bytes);
  const firstRr = 12 + wireLength(answer().questions[0]!.name) + 4;
  assert.is(bytes[firstRr], 0xc0, 'the encoder compressed the owner to the question');
  bytes[firstRr + 1] = 0x02;
  throwsCode(() => decodeMessage(bytes), 'DNS_ERR_FORMERR', /into the header/);
});

s('TTL with the top bit set reads as 0 (RFC 2181 section 8); ttlOffsets point at TTLs', () => {
  const msg = answer();
  const enc = encodeMessage(msg);
  assert.is(enc.ttlOffsets.length, msg.answers.length + msg.authorities.length + msg.additionals.length);
  const all = [...msg.answers, ...msg.authorities, ...msg.additionals];
  enc.ttlOffsets.forEach((off, i) => assert.is(enc.bytes.readUInt32BE(off), all[i]!.ttl));
  const patched = Buffer.from(enc.bytes);
  patched.writeUInt32BE(0x80000001, enc.ttlOffsets[0]!);
  assert.is(decodeMessage(patched).answers[0]?.ttl, 0);
});

s('counts larger than the packet are rejected fast, without allocating from them', () => {
  const pkt = Buffer.alloc(20);
  pkt.writeUInt16BE(0xffff, 4);
  pkt.writeUInt16BE(0xffff, 6);
  pkt.writeUInt16BE(0xffff, 8);
  pkt.writeUInt16BE(0xffff, 10);
  const started = process.hrtime.bigint();
  let thrown = 0;
  for (let i = 0; i < 10_000; i++) {
    try {
      decodeMessage(pkt);
    } catch (err) {
      if (err instanceof DnsError && err.code === 'DNS_ERR_FORMERR') thrown++;
      else throw err;
    }
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  assert.is(thrown, 10_000);
  assert.ok(ms < 2000, `10,000 decodes took ${ms} ms`);
  throwsCode(() => decodeMessage(pkt), 'DNS_ERR_FORMERR', /cannot fit/);
});

s('encodeMessage refuses names it cannot put on the wire', () => {
  const long = Array.from({ length: 5 }, () => 'x'.repeat(63)).join('.') + '.';
  throwsCode(() => encodeMessage(query(long, 1)), 'DNS_ERR_BAD_NAME', /bytes in wire form/);
  throwsCode(() => encodeMessage(query('x'.repeat(64) + '.', 1)), 'DNS_ERR_BAD_NAME', /label of 64/);
  throwsCode(() => encodeMessage(query('a..b.', 1)), 'DNS_ERR_BAD_NAME', /label of 0/);
  // Names are absolute: without the final dot (or with it escaped) it is not a name to encode.
  for (const relative of ['', 'a.b', 'a\\.']) throwsCode(() => encodeMessage(query(relative, 1)), 'DNS_ERR_BAD_NAME', /not an absolute name/);
});

s('maxSize: drop additional without TC, then cut to the question with TC', () => {
  const msg = referral();
  const full = encodeMessage(msg);
  assert.not.ok(full.truncated);
  const noGlueSize = encodeMessage({ ...msg, additionals: [] }).bytes.length;
  const lean = encodeMessage(msg, { maxSize: noGlueSize });
  assert.not.ok(lean.truncated);
  const dl = decodeMessage(lean.bytes);
  assert.not.ok(dl.flags.tc);
  assert.is(dl.additionals.length, 0);
  assert.is(dl.authorities.length, 13);
  assert.ok(dl.edns, 'OPT kept');
  assert.is(lean.ttlOffsets.length, 13);

  const cut = encodeMessage(msg, { maxSize: noGlueSize - 1 });
  assert.ok(cut.truncated);
  const dc = decodeMessage(cut.bytes);
  assert.ok(dc.flags.tc);
  assert.equal(dc.questions, msg.questions);
  assert.is(dc.authorities.length + dc.answers.length + dc.additionals.length, 0);
  assert.ok(dc.edns);
  assert.equal(cut.ttlOffsets, []);
  assert.ok(cut.bytes.length <= noGlueSize - 1);
});

s('encodeErrorResponse copies ID, opcode, RD, CD, question and OPT with its DO bit', () => {
  const q = encodeMessage(query('Www.Example.com.', 28, { id: 0x4242, edns: true, rd: true, cd: true, dnssecOk: true })).bytes;
  const r = encodeErrorResponse(q, 5)!;
  const d = decodeMessage(r);
  assert.is(d.id, 0x4242);
  assert.ok(d.flags.qr && d.flags.rd && d.flags.cd);
  assert.not.ok(d.flags.aa || d.flags.ra || d.flags.tc);
  assert.is(d.rcode, 5);
  assert.equal(d.questions, [{ name: 'Www.Example.com.', type: 28, class: 1 }]);
  // RFC 3225 section 3: the DO bit of the query is copied into the response, errors included.
  assert.equal(d.edns, { udpSize: 1232, version: 0, dnssecOk: true, options: Buffer.alloc(0) });
  const noDo = encodeMessage(query('a.', 1, { edns: true })).bytes;
  assert.is(decodeMessage(encodeErrorResponse(noDo, 5)!).edns?.dnssecOk, false);

  assert.ok(decodeMessage(encodeErrorResponse(q, 5, true)!).flags.ra, 'RA on request');

  const noEdns = decodeMessage(encodeErrorResponse(encodeMessage(query('a.', 1, { rd: false })).bytes, 2)!);
  assert.is(noEdns.edns, null);
  assert.not.ok(noEdns.flags.rd);

  // BADVERS needs the extended rcode bits, so an OPT is always present.
  const bad = decodeMessage(encodeErrorResponse(q, 16)!);
  assert.is(bad.rcode, 16);

  // Garbage after a readable header: FORMERR without a question.
  const garbage = Buffer.concat([q.subarray(0, 12), Buffer.from([0xc0, 0xff, 1])]);
  const fe = decodeMessage(encodeErrorResponse(garbage, 1)!);
  assert.is(fe.questions.length, 0);
  assert.is(fe.rcode, 1);
  assert.is(fe.id, 0x4242);

  // NOTIFY (opcode 4) answered NOTIMP keeps its opcode.
  const notify = Buffer.from(q);
  notify[2] = (notify[2]! & 0x87) | (4 << 3);
  assert.is(decodeMessage(encodeErrorResponse(notify, 4)!).flags.opcode, 4);

  // A cookie-only query (QDCOUNT 0 plus OPT, RFC 7873 section 5.4) still gets its OPT back.
  const cookieOnly = encodeMessage({ ...query('x.', 1, { edns: true }), questions: [] }).bytes;
  const co = decodeMessage(encodeErrorResponse(cookieOnly, 1)!);
  assert.is(co.questions.length, 0);
  assert.ok(co.edns);
  const cookieOnlyDo = encodeMessage({ ...query('x.', 1, { edns: true, dnssecOk: true }), questions: [] }).bytes;
  assert.is(decodeMessage(encodeErrorResponse(cookieOnlyDo, 1)!).edns?.dnssecOk, true, 'DO read by the full decode too');

  assert.is(encodeErrorResponse(q.subarray(0, 11), 1), null);
  const response = Buffer.from(q);
  response[2] = response[2]! | 0x80;
  assert.is(encodeErrorResponse(response, 1), null);
});

s('encodeErrorResponse: a query that does not decode still gets an OPT (with its DO bit) when one ends it', () => {
  const header = (arcount: number): Buffer => Buffer.from([0x77, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, arcount]);
  const question = Buffer.concat([Buffer.from([64]), Buffer.alloc(64, 0x61), Buffer.from([0, 0, 1, 0, 1])]); // a 64-octet label
  const opt = (doBit: boolean, owner = Buffer.from([0])): Buffer => Buffer.concat([owner, Buffer.from([0, 41, 0x10, 0, 0, 0, doBit ? 0x80 : 0, 0, 0, 0])]);
  const withCookie = Buffer.concat([opt(true).subarray(0, 9), Buffer.from([0, 12, 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8])]);
  const cases: Array<[string, Buffer, boolean | null]> = [
    ['an unreadable qname', Buffer.concat([header(1), question, opt(true)]), true],
    ['an unreadable qname, an OPT with a cookie', Buffer.concat([header(1), question, withCookie]), true],
    ['two OPT records', Buffer.concat([header(2), encodeMessage(query('a.', 1)).bytes.subarray(12), opt(false), opt(true)]), true],
    ['an OPT with a non-root owner', Buffer.concat([header(1), encodeMessage(query('a.', 1)).bytes.subarray(12), opt(false, Buffer.from([1, 0x62, 0]))]), false],
    ['an unreadable qname, no OPT', Buffer.concat([header(0), question]), null],
    ['an unreadable qname, ARCOUNT 1 but no OPT at the end', Buffer.concat([header(1), question, Buffer.from([0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0])]), null],
  ];
  for (const [what, q, dnssecOk] of cases) {
    throwsCode(() => decodeMessage(q), 'DNS_ERR_FORMERR');
    const r = decodeMessage(encodeErrorResponse(q, 1)!);
    assert.is(r.rcode, 1, what);
    if (dnssecOk === null) assert.is(r.edns, null, `${what}: no OPT`);
    else assert.equal(r.edns && { version: r.edns.version, dnssecOk: r.edns.dnssecOk }, { version: 0, dnssecOk }, `${what}: OPT version 0, DO copied`);
  }
});

s('readQueryKey: case folding, offsets, with and without OPT', () => {
  const plain = encodeMessage(query('WwW.ExAmple.COM.', 1, { id: 99, rd: true })).bytes;
  const k = readQueryKey(plain)!;
  assert.is(k.key, 'www.example.com.|1|1');
  assert.is(k.id, 99);
  assert.is(k.qnameEnd, 12 + wireLength('www.example.com.'));
  assert.is(k.questionEnd, k.qnameEnd + 4);
  assert.ok(k.rd);
  assert.not.ok(k.cd);
  assert.is(k.ednsUdpSize, null);
  assert.not.ok(k.dnssecOk);

  const withOpt = encodeMessage(query('example.com.', 28, { edns: true, dnssecOk: true, cd: true })).bytes;
  const ko = readQueryKey(withOpt)!;
  assert.is(ko.key, 'example.com.|28|1');
  assert.is(ko.ednsUdpSize, 1232);
  assert.ok(ko.dnssecOk && ko.cd);

  assert.is(readQueryKey(encodeMessage(query('.', 2)).bytes)?.key, '.|2|1');
  const escaped = encodeMessage(query('A\\.b.\\255.', 16)).bytes;
  assert.is(readQueryKey(escaped)?.key, 'a\\.b.\\255.|16|1');
});

s('readQueryKey: the qname alone and the packet cache key with the EDNS, DO and CD flags', () => {
  const k = readQueryKey(encodeMessage(query('WwW.ExAmple.COM.', 1, { id: 99, rd: true })).bytes)!;
  assert.is(k.qname, 'www.example.com.');
  assert.is(k.cacheKey, 'www.example.com.|1|1|000');
  const ko = readQueryKey(encodeMessage(query('example.com.', 28, { edns: true, dnssecOk: true, cd: true })).bytes)!;
  assert.is(ko.cacheKey, 'example.com.|28|1|111');
  assert.is(readQueryKey(encodeMessage(query('example.com.', 65535, { edns: true })).bytes)?.cacheKey, 'example.com.|65535|1|100');
  const root = readQueryKey(encodeMessage(query('.', 2, { cd: true })).bytes)!;
  assert.equal([root.qname, root.key, root.cacheKey], ['.', '.|2|1', '.|2|1|001']);
  const escaped = readQueryKey(encodeMessage(query('A\\.b.\\255.', 16)).bytes)!;
  assert.is(escaped.qname, 'a\\.b.\\255.');
  // The longest name (255 wire bytes, every byte escaped as \DDD) fits the key buffer.
  const label = '\\000'.repeat(63);
  const longest = `${label}.${label}.${label}.${'\\000'.repeat(61)}.`;
  const kl = readQueryKey(encodeMessage(query(longest, 1)).bytes)!;
  assert.is(kl.qname, longest);
  assert.is(kl.cacheKey, `${longest}|1|1|000`);
});

s('readQueryKey returns null for what the slow path must handle', () => {
  const base = encodeMessage(query('example.com.', 1, { edns: true })).bytes;
  const mod = (f: (b: Buffer) => void, src: Buffer = base): Buffer => {
    const b = Buffer.from(src);
    f(b);
    return b;
  };
  assert.ok(readQueryKey(base));
  assert.is(readQueryKey(mod((b) => (b[2] = b[2]! | 0x80))), null, 'QR=1');
  assert.is(readQueryKey(mod((b) => (b[2] = b[2]! | 0x08))), null, 'opcode IQUERY');
  assert.is(readQueryKey(mod((b) => (b[2] = b[2]! | 0x02))), null, 'TC=1');
  assert.ok(readQueryKey(mod((b) => (b[2] = b[2]! | 0x04))), 'AA=1 in a query is ignored, as Unbound does');
  assert.is(readQueryKey(mod((b) => b.writeUInt16BE(2, 4))), null, 'qdcount 2');
  assert.is(readQueryKey(mod((b) => b.writeUInt16BE(1, 6))), null, 'ancount 1');
  assert.is(readQueryKey(mod((b) => b.writeUInt16BE(1, 8))), null, 'nscount 1');
  assert.is(readQueryKey(mod((b) => b.writeUInt16BE(2, 10))), null, 'arcount 2');
  assert.is(readQueryKey(Buffer.concat([base, Buffer.from([0])])), null, 'trailing byte');
  assert.is(readQueryKey(base.subarray(0, base.length - 1)), null, 'truncated OPT');
  const optAt = 12 + wireLength('example.com.') + 4;
  assert.is(readQueryKey(mod((b) => (b[optAt + 6] = 1))), null, 'EDNS version 1');
  assert.is(readQueryKey(mod((b) => (b[optAt + 2] = 1))), null, 'additional record not OPT');
  const badOpt = Buffer.concat([base.subarray(0, optAt + 9), Buffer.from([0, 3, 0, 1, 0])]);
  assert.is(readQueryKey(badOpt), null, 'malformed option');
  // A compressed qname: "www" + pointer back into the header is legal-ish but not the fast path.
  const ptr = Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 0x77, 0x77, 0x77, 0xc0, 4, 0, 1, 0, 1]);
  assert.is(readQueryKey(ptr), null, 'compressed qname');
  assert.is(readQueryKey(base.subarray(0, 12)), null);
  const plain = encodeMessage(query('example.com.', 1)).bytes;
  assert.is(readQueryKey(plain.subarray(0, plain.length - 1)), null, 'short question');
});

s('peekHeader reads counts and flags, null when short', () => {
  const h = peekHeader(encodeMessage(referral()).bytes)!;
  assert.equal(
    { id: h.id, qr: h.flags.qr, qd: h.qdcount, an: h.ancount, ns: h.nscount, ar: h.arcount },
    { id: 7, qr: true, qd: 1, an: 0, ns: 13, ar: 27 },
  );
  assert.is(peekHeader(Buffer.alloc(11)), null);
});


s('fuzz: random and mutated packets only ever raise DnsError', () => {
  const seed = process.env.MXSENTRY_FUZZ_SEED ? Number(process.env.MXSENTRY_FUZZ_SEED) : randomBytes(4).readUInt32BE(0);
  console.log(`  dns/wire fuzz seed ${seed} (replay with MXSENTRY_FUZZ_SEED=${seed})`);
  const rnd = seededRandom(seed);
  const int = (n: number): number => Math.floor(rnd() * n);
  const corpus = [
    encodeMessage(query('www.example.com.', 1)).bytes,
    encodeMessage(query('Mail.Example.org.', 15, { edns: true, dnssecOk: true })).bytes,
    encodeMessage(referral()).bytes,
    encodeMessage(answer()).bytes,
    encodeErrorResponse(encodeMessage(query('x.', 1, { edns: true })).bytes, 1)!,
  ];
  const maxIter = 100_000;
  const deadline = Date.now() + 20_000;
  let iter = 0;
  let decoded = 0;
  for (; iter < maxIter && (iter & 1023 || Date.now() < deadline); iter++) {
    let pkt: Buffer;
    const src = corpus[int(corpus.length)]!;
    const kind = int(6);
    if (kind === 0) {
      pkt = Buffer.from(Array.from({ length: int(80) }, () => int(256)));
    } else {
      pkt = Buffer.from(src);
      if (kind === 1 || kind === 5) {
        for (let f = 1 + int(4); f > 0; f--) pkt[int(pkt.length)]! ^= 1 << int(8);
      }
      if (kind === 2 || kind === 5) pkt = pkt.subarray(0, int(pkt.length + 1));
      if (kind === 3 && pkt.length >= 12) pkt.writeUInt16BE(int(4) === 0 ? 0xffff : int(64), 4 + 2 * int(4));
      if (kind === 4 && pkt.length > 13) {
        const at = 12 + int(pkt.length - 13);
        pkt[at] = 0xc0 | int(0x40);
        pkt[at + 1] = int(pkt.length + 8);
      }
    }
    const where = `seed ${seed} iteration ${iter} packet ${pkt.toString('hex')}`;
    let key: ReturnType<typeof readQueryKey> = null;
    let msg: Message | null = null;
    try {
      peekHeader(pkt);
      encodeErrorResponse(pkt, 1);
      key = readQueryKey(pkt);
      msg = decodeMessage(pkt);
      decoded++;
    } catch (err) {
      if (!(err instanceof DnsError)) throw new Error(`non-DnsError ${String(err)} (${where})`, { cause: err });
      assert.is(key, null, `fast path accepted what decodeMessage rejects (${where})`);
    }
    if (msg) {
      // Whatever decodes must re-encode and decode again, and agree with the fast path.
      const again = decodeMessage(encodeMessage(msg).bytes);
      assert.is(again.questions.length, msg.questions.length, where);
      if (key) assert.is(key.qtype, msg.questions[0]?.type, where);
    }
  }
  assert.ok(iter >= 10_000, `only ${iter} iterations ran`);
  assert.ok(decoded > 0, 'some mutated packets still decode');
});

s.run();
