// The encoder's output buffer and its name compression (RFC 1035 section 4.1.4), for message.ts:
// names written uncompressed, then cut at the longest suffix already written, found by a hash of
// its canonical wire bytes and confirmed byte for byte. Also the rdata layouts both directions use.
// Must never write a pointer to anything but an equal name at an offset below 0x4000, and never
// compress names inside rdata of types other than the RFC 1035 ones (RFC 3597 section 4).
import { randomInt } from 'node:crypto';
import { DnsError } from '../../util/errors.js';
import type { Name } from './types.js';

const BACKSLASH = 0x5c;
const DOT = 0x2e;
/** FNV-1a basis xor a per-process random value: suffix hashes cannot be chosen to collide offline. */
const SUFFIX_HASH_SEED = (0x811c9dc5 ^ randomInt(0x40000000)) >>> 0;
/** Compression pointers carry 14 bits of offset. */
const MAX_POINTER_TARGET = 0x3fff;

/**
 * Layout of rdata that contains domain names: 'n' is a name, a number is that many fixed bytes.
 * RFC 1035 types plus those RFC 3597 section 4 says receivers should decompress (RP, AFSDB, RT,
 * PX, SRV, DNAME (RFC 6672), KX (RFC 2230)).
 */
export const NAME_LAYOUTS: ReadonlyMap<number, readonly ('n' | number)[]> = new Map<number, ('n' | number)[]>([
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

/** Output buffer with name compression state (canonical suffix hashes -> offsets). */
export class Writer {
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
   * Copies an uncompressed wire name from rdata (checked by fitsLayout) and compresses it as
   * writeName does; returns the offset in `src` after it.
   */
  writeWireName(src: Uint8Array, pos: number, register: boolean): number {
    const labels = this.labelAt;
    labels.length = 0;
    for (;;) {
      const len = src[pos] as number;
      if (len === 0) break;
      labels.push(this.off);
      // Byte by byte: a subarray per label would cost an object each, for a few bytes.
      const buf = this.buf;
      let off = this.off;
      for (let end = pos + 1 + len; pos < end; pos++) buf[off++] = src[pos] as number;
      this.off = off;
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
