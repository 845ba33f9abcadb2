// The packet cache's fast query key: the question of a plain query read straight from its bytes,
// canonical and flat, without a full decode. Called by dns/server (the cache-hit path) before the
// packet cache; anything it does not recognise goes to message.ts's full decode. It never throws.
import { ESCAPED_LOWER } from './name.js';
import { readOpt, u16 } from './message.js';
import type { QueryKey } from './types.js';

const HEADER = 12;

/** Longest key: 255 wire bytes as at most 253 escaped bytes of 4 characters, then "|65535|65535". */
const KEY_SCRATCH = Buffer.alloc(1040);

/** A byte as it stands in a canonical name when it needs no escape (upper case folded), else 0. */
const PLAIN_LOWER = Uint8Array.from(ESCAPED_LOWER, (s) => (s.length === 1 ? s.charCodeAt(0) : 0));

/** Writes `v` (0..65535) in decimal at `at`; returns the offset after it. */
function writeDecimal(out: Buffer, at: number, v: number): number {
  const digits = v < 10 ? 1 : v < 100 ? 2 : v < 1000 ? 3 : v < 10000 ? 4 : 5;
  for (let i = at + digits - 1; i >= at; i--) {
    out[i] = 0x30 + (v % 10);
    v = Math.floor(v / 10);
  }
  return at + digits;
}

/**
 * The packet-cache hot path: reads the question of a plain query without a full decode. Null for
 * anything the slow path must handle: QR=1, opcode not QUERY, TC=1 (FORMERR there), counts other than qd=1 an=0 ns=0
 * ar<=1, a compressed or malformed qname, trailing bytes, or an OPT that is not well-formed,
 * not directly after the question, not the end of the packet, or not EDNS version 0.
 */
export function readQueryKey(buf: Uint8Array): QueryKey | null {
  const len = buf.length;
  if (len < HEADER + 5) return null;
  const b2 = buf[2] as number;
  // QR=0, opcode QUERY(0) and TC=0: the top five bits and bit 1 of byte 2 are zero.
  if ((b2 & 0xfa) !== 0) return null;
  if (buf[4] !== 0 || buf[5] !== 1 || buf[6] !== 0 || buf[7] !== 0 || buf[8] !== 0 || buf[9] !== 0 || buf[10] !== 0) return null;
  const arcount = buf[11] as number;
  if (arcount > 1) return null;
  let pos = HEADER;
  // The key is written as bytes into KEY_SCRATCH and read out as one flat string: concatenating it
  // a character at a time made a rope that every Map lookup had to flatten first.
  let n = 0;
  for (;;) {
    if (pos >= len) return null;
    const l = buf[pos] as number;
    if (l === 0) {
      pos++;
      break;
    }
    if (l > 63) return null; // pointer or reserved label type
    if (pos + 1 + l > len || pos + 1 + l - HEADER >= 255) return null;
    for (let i = pos + 1; i <= pos + l; i++) {
      const c = buf[i] as number;
      const plain = PLAIN_LOWER[c] as number;
      if (plain !== 0) KEY_SCRATCH[n++] = plain;
      else for (const ch of ESCAPED_LOWER[c] as string) KEY_SCRATCH[n++] = ch.charCodeAt(0);
    }
    KEY_SCRATCH[n++] = 0x2e;
    pos += l + 1;
  }
  const qnameEnd = pos;
  const questionEnd = pos + 4;
  if (questionEnd > len) return null;
  const qtype = u16(buf, qnameEnd);
  const qclass = u16(buf, qnameEnd + 2);
  if (n === 0) KEY_SCRATCH[n++] = 0x2e;
  const qnameLength = n;
  KEY_SCRATCH[n++] = 0x7c;
  n = writeDecimal(KEY_SCRATCH, n, qtype);
  KEY_SCRATCH[n++] = 0x7c;
  n = writeDecimal(KEY_SCRATCH, n, qclass);
  let ednsUdpSize: number | null = null;
  let dnssecOk = false;
  if (arcount === 0) {
    if (questionEnd !== len) return null;
  } else {
    const opt = readOpt(buf, questionEnd);
    if (!opt) return null;
    if (((opt.ttl >>> 16) & 0xff) !== 0) return null; // EDNS version > 0: BADVERS on the slow path
    ednsUdpSize = opt.udpSize;
    dnssecOk = (opt.ttl & 0x8000) !== 0;
  }
  const cd = ((buf[3] as number) & 0x10) !== 0;
  const keyLength = n;
  KEY_SCRATCH[n++] = 0x7c;
  KEY_SCRATCH[n++] = ednsUdpSize !== null ? 0x31 : 0x30;
  KEY_SCRATCH[n++] = dnssecOk ? 0x31 : 0x30;
  KEY_SCRATCH[n++] = cd ? 0x31 : 0x30;
  const cacheKey = KEY_SCRATCH.toString('latin1', 0, n);
  return {
    id: u16(buf, 0),
    key: cacheKey.slice(0, keyLength),
    qname: cacheKey.slice(0, qnameLength),
    cacheKey,
    qtype,
    qclass,
    qnameEnd,
    questionEnd,
    rd: (b2 & 0x01) !== 0,
    cd,
    ednsUdpSize,
    dnssecOk,
  };
}
