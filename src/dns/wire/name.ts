// Domain names: presentation text <-> escaped Name (see types.ts) <-> wire labels, plus the label
// arithmetic (parent, suffix, subdomain) the cache, iterator and server build on. Called by every
// dns/ module. Must never produce two spellings of one wire name, nor one spelling for two wire
// names (a label containing a dot is "\."), and must never trust a length or pointer it did not check.
import { secureRandomBytes } from '../../util/random-pool.js';
import { DnsError } from '../../util/errors.js';
import type { Name } from './types.js';

/** RFC 1035 section 2.3.4: 63 octets per label, 255 octets per name in wire form. */
const MAX_LABEL = 63;
const MAX_NAME_WIRE = 255;
/** A name of 255 bytes has at most 127 labels, so more pointer hops than that is a loop. */
const MAX_POINTER_HOPS = 127;

const BACKSLASH = 0x5c;
const DOT = 0x2e;

/** Escaped presentation form of every byte value; the single place the escaping rule lives. */
const ESCAPED: readonly string[] = Array.from({ length: 256 }, (_, b) => {
  if (b === DOT) return '\\.';
  if (b === BACKSLASH) return '\\\\';
  if (b >= 0x21 && b <= 0x7e) return String.fromCharCode(b);
  return '\\' + String(b).padStart(3, '0');
});

/**
 * Scratch space of readWireName: the escaped text of a name is written here as Latin-1 bytes and
 * read out as one flat string, instead of growing a string a character at a time (a new string per
 * character, most of the garbage a decoded response made). A name of 255 wire bytes has at most
 * 4 * 253 + 127 escaped characters.
 */
const NAME_SCRATCH = Buffer.alloc(4 * MAX_NAME_WIRE + MAX_POINTER_HOPS + 8);

/** A byte as it stands in a Name when it needs no escape (ESCAPED maps it to itself), else 0. */
const PLAIN = Uint8Array.from(ESCAPED, (s) => (s.length === 1 ? s.charCodeAt(0) : 0));

/** Same as ESCAPED with ASCII A-Z folded to a-z (RFC 4343), for canonical keys built from wire. */
export const ESCAPED_LOWER: readonly string[] = ESCAPED.map((s, b) =>
  b >= 0x41 && b <= 0x5a ? String.fromCharCode(b + 0x20) : s,
);

function badName(text: string, why: string): DnsError {
  return new DnsError('DNS_ERR_BAD_NAME', `invalid domain name ${JSON.stringify(text)}: ${why}`);
}

/**
 * Splits presentation text (escaped or not) into label byte arrays. Accepts "\." "\\" "\X" and
 * "\DDD" (RFC 1035 section 5.1); characters outside ASCII are taken as their UTF-8 bytes.
 * A single trailing dot is optional; "." alone is the root.
 */
function textToLabels(text: string): number[][] {
  if (text.length === 0) throw badName(text, 'empty');
  if (text === '.') return [];
  const labels: number[][] = [];
  let label: number[] = [];
  let wire = 1;
  let endedWithDot = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    endedWithDot = false;
    if (c === DOT) {
      if (label.length === 0) throw badName(text, 'empty label');
      labels.push(label);
      wire += label.length + 1;
      label = [];
      endedWithDot = true;
      continue;
    }
    if (c === BACKSLASH) {
      const next = text.charCodeAt(i + 1);
      if (Number.isNaN(next)) throw badName(text, 'dangling backslash');
      if (next >= 0x30 && next <= 0x39) {
        const digits = text.slice(i + 1, i + 4);
        if (!/^[0-9]{3}$/.test(digits)) throw badName(text, 'a \\DDD escape needs three digits');
        const value = Number(digits);
        if (value > 255) throw badName(text, `\\${digits} is not a byte`);
        label.push(value);
        i += 3;
      } else if (next < 0x80) {
        label.push(next);
        i += 1;
      } else {
        // An escaped non-ASCII character: take its UTF-8 bytes like an unescaped one.
        const cp = text.codePointAt(i + 1) ?? next;
        const ch = String.fromCodePoint(cp);
        for (const b of Buffer.from(ch, 'utf8')) label.push(b);
        i += ch.length;
      }
    } else if (c < 0x80) {
      label.push(c);
    } else {
      const cp = text.codePointAt(i) ?? c;
      const ch = String.fromCodePoint(cp);
      for (const b of Buffer.from(ch, 'utf8')) label.push(b);
      i += ch.length - 1;
    }
    if (label.length > MAX_LABEL) throw badName(text, `label longer than ${MAX_LABEL} bytes`);
  }
  if (!endedWithDot) {
    if (label.length === 0) throw badName(text, 'empty label');
    labels.push(label);
    wire += label.length + 1;
  }
  if (wire > MAX_NAME_WIRE) throw badName(text, `longer than ${MAX_NAME_WIRE} bytes in wire form`);
  return labels;
}

function labelsToName(labels: readonly (readonly number[])[]): Name {
  if (labels.length === 0) return '.';
  let out = '';
  for (const label of labels) {
    for (const b of label) out += ESCAPED[b];
    out += '.';
  }
  return out;
}

/**
 * Parses presentation text (user input, CLI, zone file) into an absolute escaped Name. The
 * trailing dot is optional (the text is always taken as absolute; "@" has no special meaning).
 * @throws DnsError DNS_ERR_BAD_NAME on empty labels, a label over 63 bytes, a name over 255
 *   wire bytes or a malformed escape.
 */
export function parseName(text: string): Name {
  return plainName(text) ?? labelsToName(textToLabels(text));
}

/**
 * parseName for the common text of printable characters other than '\\' (no escapes: every such
 * character is its own Name form), without building label arrays: the text itself, with the
 * trailing dot added when missing. Null for anything else (escapes, other characters, the root,
 * an empty or overlong label, a name over 255 wire bytes), which takes the general path and its errors.
 */
function plainName(text: string): Name | null {
  const n = text.length;
  if (n === 0 || n > MAX_NAME_WIRE) return null;
  const dotted = text.charCodeAt(n - 1) === DOT;
  // Wire length: the text's characters plus a length byte for the first label and the root byte.
  if ((dotted ? n + 1 : n + 2) > MAX_NAME_WIRE) return null;
  let labelStart = 0;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === DOT) {
      const len = i - labelStart;
      if (len === 0 || len > MAX_LABEL) return null;
      labelStart = i + 1;
    } else if (c < 0x21 || c > 0x7e || c === BACKSLASH) {
      return null;
    }
  }
  if (!dotted && (n - labelStart === 0 || n - labelStart > MAX_LABEL)) return null;
  return dotted ? text : `${text}.`;
}

/**
 * Canonical form for keys and comparisons: ASCII A-Z -> a-z only (RFC 4343 section 4.1). A Name
 * is pure ASCII by construction (every other byte is a \DDD escape), so String#toLowerCase
 * touches exactly A-Z and never an escape sequence.
 */
export function canonicalName(name: Name): Name {
  return name.toLowerCase();
}

/**
 * Uncompressed wire form (length-prefixed labels and the root byte).
 * @throws DnsError DNS_ERR_BAD_NAME when the Name is not valid (see parseName).
 */
export function nameToWire(name: Name): Buffer {
  const plain = plainNameToWire(name);
  if (plain) return plain;
  const labels = textToLabels(name);
  const out = Buffer.allocUnsafe(wireLengthOfLabels(labels));
  let off = 0;
  for (const label of labels) {
    out[off++] = label.length;
    for (const b of label) out[off++] = b;
  }
  out[off] = 0;
  return out;
}

/**
 * nameToWire without building label arrays, for the common absolute name of printable characters
 * other than '.' and '\\' in its labels; null for anything else (escapes, the root, no trailing
 * dot, an empty or overlong label, a name over 255 bytes), which takes the general path and its errors.
 */
function plainNameToWire(name: Name): Buffer | null {
  // plainName checks the labels and returns a dotted plain name as it is.
  if (name.length < 2 || plainName(name) !== name) return null;
  const out = Buffer.allocUnsafe(name.length + 1);
  let lenAt = 0;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === DOT) {
      out[lenAt] = i - lenAt;
      lenAt = i + 1;
    } else {
      out[i + 1] = c;
    }
  }
  out[name.length] = 0;
  return out;
}

function wireLengthOfLabels(labels: readonly (readonly number[])[]): number {
  let n = 1;
  for (const l of labels) n += l.length + 1;
  return n;
}

/** Length of the uncompressed wire form, computed from the escaped text without allocating. */
export function wireLength(name: Name): number {
  if (name === '.') return 1;
  let n = 1;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === BACKSLASH) {
      const next = name.charCodeAt(i + 1);
      i += next >= 0x30 && next <= 0x39 ? 3 : 1;
    }
    // every escape, plain character and separating dot is one wire byte (dot = next length byte)
    n++;
  }
  // A trailing-dot-less name still has one more length byte for its first label.
  return name.charCodeAt(name.length - 1) === DOT && !isEscapedAt(name, name.length - 1) ? n : n + 1;
}

function formerr(message: string): DnsError {
  return new DnsError('DNS_ERR_FORMERR', message);
}

/**
 * Reads a wire name at `offset`, following compression pointers (RFC 1035 section 4.1.4).
 * A pointer must point strictly before the start of the label run that contains it, so every hop
 * goes backwards and loops are impossible; hops are capped as well. `end` is the offset just past
 * the name as it sits at `offset` (after the first pointer when there is one).
 * @param opts.allowPointers false for self-contained data (rdata), where a pointer is an error.
 * @param opts.pointerFloor the lowest offset a pointer may reach: 12 in a whole DNS message, whose
 *   header holds no names (a pointer into it is garbage, not compression). Default 0.
 * @throws DnsError DNS_ERR_FORMERR on truncation, a bad pointer, label types 0x40/0x80, a label
 *   run that is too long or a name over 255 bytes.
 */
export function readWireName(
  buf: Uint8Array,
  offset: number,
  opts?: { allowPointers?: boolean; pointerFloor?: number },
): { name: Name; end: number } {
  const allowPointers = opts?.allowPointers ?? true;
  const pointerFloor = opts?.pointerFloor ?? 0;
  let pos = offset;
  let runStart = offset;
  let end = -1;
  let hops = 0;
  let wire = 1;
  const out = NAME_SCRATCH;
  let n = 0;
  for (;;) {
    if (pos >= buf.length) throw formerr(`name at ${offset} runs past the end of the data`);
    const len = buf[pos] as number;
    if (len === 0) {
      if (end < 0) end = pos + 1;
      break;
    }
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (!allowPointers) throw formerr(`compression pointer in self-contained name at ${offset}`);
      if (pos + 1 >= buf.length) throw formerr(`truncated compression pointer at ${pos}`);
      const target = ((len & 0x3f) << 8) | (buf[pos + 1] as number);
      if (target >= runStart) throw formerr(`compression pointer at ${pos} does not point backwards (to ${target})`);
      if (target < pointerFloor) throw formerr(`compression pointer at ${pos} points into the header (to ${target})`);
      if (++hops > MAX_POINTER_HOPS) throw formerr(`too many compression pointers in name at ${offset}`);
      if (end < 0) end = pos + 2;
      pos = target;
      runStart = target;
      continue;
    }
    if (kind !== 0) throw formerr(`unsupported label type 0x${kind.toString(16)} at ${pos}`);
    wire += len + 1;
    if (wire > MAX_NAME_WIRE) throw formerr(`name at ${offset} is longer than ${MAX_NAME_WIRE} bytes`);
    if (pos + 1 + len > buf.length) throw formerr(`label at ${pos} runs past the end of the data`);
    for (let i = pos + 1; i <= pos + len; i++) {
      const c = buf[i] as number;
      const plain = PLAIN[c] as number;
      if (plain !== 0) {
        out[n++] = plain;
      } else {
        const esc = ESCAPED[c] as string;
        for (let k = 0; k < esc.length; k++) out[n++] = esc.charCodeAt(k);
      }
    }
    out[n++] = DOT;
    pos += len + 1;
  }
  return { name: n === 0 ? '.' : out.toString('latin1', 0, n), end };
}

/** True when the character at `index` is preceded by an odd number of backslashes. */
function isEscapedAt(name: string, index: number): boolean {
  let n = 0;
  for (let i = index - 1; i >= 0 && name.charCodeAt(i) === BACKSLASH; i--) n++;
  return (n & 1) === 1;
}

/** Offsets where each label starts in an escaped Name (root -> []); used by the encoder too. */
export function labelStarts(name: Name): number[] {
  if (name === '.') return [];
  const starts = [0];
  for (let i = 0; i < name.length - 1; i++) {
    const c = name.charCodeAt(i);
    if (c === BACKSLASH) {
      const next = name.charCodeAt(i + 1);
      i += next >= 0x30 && next <= 0x39 ? 3 : 1;
    } else if (c === DOT) {
      starts.push(i + 1);
    }
  }
  return starts;
}

/** Escaped labels, leftmost first; the root has none. 'a\.b.c.' -> ['a\.b', 'c']. */
export function nameLabels(name: Name): string[] {
  const starts = labelStarts(name);
  const out: string[] = [];
  for (let i = 0; i < starts.length; i++) {
    const from = starts[i] as number;
    const to = i + 1 < starts.length ? (starts[i + 1] as number) - 1 : name.length - 1;
    out.push(name.slice(from, to));
  }
  return out;
}

/** Number of labels, the root not counted ('.' -> 0, 'a.b.' -> 2). */
export function labelCount(name: Name): number {
  return labelStarts(name).length;
}

/** The name without its leftmost label; the root has no parent (null). */
export function parentName(name: Name): Name | null {
  if (name === '.') return null;
  const starts = labelStarts(name);
  const second = starts[1];
  return second === undefined ? '.' : name.slice(second);
}

/**
 * The rightmost `labels` labels: suffixName('a.b.c.', 2) = 'b.c.'; 0 -> '.'; a count at or above
 * the name's own label count returns the name unchanged.
 */
export function suffixName(name: Name, labels: number): Name {
  if (labels <= 0) return '.';
  const starts = labelStarts(name);
  if (labels >= starts.length) return name;
  return name.slice(starts[starts.length - labels] as number);
}

/**
 * True when `name` equals `zone` or lies below it, compared label-wise and case-insensitively:
 * 'xexample.com.' is not under 'example.com.', nor is 'a\.example.com.' (one label 'a.example').
 */
export function isSubdomain(name: Name, zone: Name): boolean {
  if (zone === '.') return true;
  const n = canonicalName(name);
  const z = canonicalName(zone);
  if (n.length < z.length) return false;
  if (n.length === z.length) return n === z;
  if (!n.endsWith(z)) return false;
  const sep = n.length - z.length - 1;
  return n.charCodeAt(sep) === DOT && !isEscapedAt(n, sep);
}

/** Case-insensitive equality (RFC 4343). */
export function namesEqual(a: Name, b: Name): boolean {
  return a === b || canonicalName(a) === canonicalName(b);
}

/**
 * DNS 0x20 (draft-vixie-dnsext-dns0x20): each ASCII letter gets a random case, one crypto random
 * bit per letter from the pooled CSPRNG (util/random-pool.ts). Escapes never contain letters, so they are kept.
 */
export function randomizeCase(name: Name): Name {
  const bits = secureRandomBytes((name.length >> 3) + 1);
  // Into a scratch buffer and out as one string: a string per character costs two objects each.
  const scratch = name.length <= CASE_SCRATCH.length ? CASE_SCRATCH : Buffer.allocUnsafe(name.length);
  for (let i = 0; i < name.length; i++) {
    let c = name.charCodeAt(i);
    // Names are ASCII text (parseName escapes every other byte as \DDD); anything else is kept as is.
    if (c > 0x7f) return randomizeCaseSlow(name, bits);
    const lower = c | 0x20;
    if (lower >= 0x61 && lower <= 0x7a) {
      const upper = (((bits[i >> 3] as number) >> (i & 7)) & 1) === 1;
      c = upper ? lower & ~0x20 : lower;
    }
    scratch[i] = c;
  }
  return scratch.toString('latin1', 0, name.length);
}

const CASE_SCRATCH = Buffer.allocUnsafe(1024);

function randomizeCaseSlow(name: Name, bits: Uint8Array): Name {
  let out = '';
  for (let i = 0; i < name.length; i++) {
    let c = name.charCodeAt(i);
    const lower = c | 0x20;
    if (lower >= 0x61 && lower <= 0x7a) {
      const upper = (((bits[i >> 3] as number) >> (i & 7)) & 1) === 1;
      c = upper ? lower & ~0x20 : lower;
    }
    out += String.fromCharCode(c);
  }
  return out;
}
