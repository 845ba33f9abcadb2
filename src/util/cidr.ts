// CIDR parsing and matching for IPv4 and IPv6, shared by the DNS access control list and the policy
// service's known networks. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) match as IPv4.
// Pure functions; no I/O.
import { isIP } from 'node:net';
import { MxError } from './errors.js';
import { CidrIndex } from './cidr-index.js';

/** A parsed network: family, network address bytes (host bits cleared) and prefix length. */
export interface Cidr {
  family: 4 | 6;
  bytes: Uint8Array;
  prefix: number;
  /** Canonical text, e.g. "192.0.2.0/24" or "2001:db8::/32". */
  text: string;
}

const addressMemo = new Map<string, { family: 4 | 6; bytes: Uint8Array } | null>();

/**
 * Parses an IPv4 or IPv6 address into bytes; IPv4-mapped IPv6 becomes IPv4. Null when invalid.
 * Memoised (bounded): the policy service parses the same client address several times per
 * request. The result is shared: callers must not modify `bytes`.
 */
export function parseAddress(text: string): { family: 4 | 6; bytes: Uint8Array } | null {
  const hit = addressMemo.get(text);
  if (hit !== undefined) return hit;
  const parsed = parseAddressUncached(text);
  if (addressMemo.size >= 4096) addressMemo.clear();
  addressMemo.set(text, parsed);
  return parsed;
}

function parseAddressUncached(text: string): { family: 4 | 6; bytes: Uint8Array } | null {
  let t = text.trim();
  if (t.startsWith('[') && t.endsWith(']')) t = t.slice(1, -1);
  const zone = t.indexOf('%');
  if (zone >= 0) t = t.slice(0, zone);
  const kind = isIP(t);
  if (kind === 4) return { family: 4, bytes: parseV4(t) };
  if (kind === 6) {
    const bytes = parseV6(t);
    if (isV4Mapped(bytes)) return { family: 4, bytes: bytes.slice(12) };
    return { family: 6, bytes };
  }
  return null;
}

/** Parses "addr/len" or a bare address (a host route). Throws MxError UTIL_ERR_BAD_CIDR. */
export function parseCidr(text: string): Cidr {
  const t = text.trim();
  const slash = t.lastIndexOf('/');
  const addrText = slash >= 0 ? t.slice(0, slash) : t;
  const addr = parseAddress(addrText);
  if (!addr) throw new MxError('UTIL_ERR_BAD_CIDR', `not an IP address or network: "${text}"`);
  // An IPv4-mapped IPv6 network (::ffff:192.0.2.0/120) is written in IPv6 bits but matched as IPv4.
  const writtenAsV6 = isIP(addrText.replace(/^\[|\]$/g, '').replace(/%.*$/, '')) === 6;
  const max = writtenAsV6 ? 128 : 32;
  let prefix = addr.family === 4 ? 32 : 128;
  if (slash >= 0) {
    const p = t.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) {
      throw new MxError('UTIL_ERR_BAD_CIDR', `bad prefix length in "${text}" (0-${max})`);
    }
    prefix = Number(p);
    if (addr.family === 4 && writtenAsV6) {
      if (prefix < 96) throw new MxError('UTIL_ERR_BAD_CIDR', `bad prefix length in "${text}": an IPv4-mapped network needs /96 to /128`);
      prefix -= 96;
    }
  }
  const bytes = maskBytes(addr.bytes, prefix);
  return { family: addr.family, bytes, prefix, text: `${formatAddress(addr.family, bytes)}/${prefix}` };
}

/**
 * Postfix's complaint about a network written with host bits set ("192.0.2.1/24"), or undefined
 * when there are none (or no prefix): 'non-null host address bits in "192.0.2.1/24", perhaps you
 * mean "192.0.2.0/24"'. Throws like parseCidr for text that is not a network at all.
 */
export function cidrHostBitsProblem(text: string): string | undefined {
  const cidr = parseCidr(text);
  const t = text.trim();
  const slash = t.lastIndexOf('/');
  if (slash < 0) return undefined;
  const addr = parseAddress(t.slice(0, slash));
  if (!addr || addr.family !== cidr.family) return undefined;
  if (addr.bytes.every((b, i) => b === cidr.bytes[i])) return undefined;
  return `non-null host address bits in "${t}", perhaps you mean "${cidr.text}"`;
}

/** True when the address lies inside the network. */
export function cidrContains(cidr: Cidr, addr: { family: 4 | 6; bytes: Uint8Array }): boolean {
  if (cidr.family !== addr.family) return false;
  const full = cidr.prefix >> 3;
  for (let i = 0; i < full; i++) if (cidr.bytes[i] !== addr.bytes[i]) return false;
  const rest = cidr.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((addr.bytes[full] ?? 0) & mask) === (cidr.bytes[full] ?? 0);
}

/** An unordered set of networks; `has` answers membership. */
export class CidrSet {
  private readonly nets: Cidr[] = [];
  /** Built at the first match after a change. */
  private index: CidrIndex | undefined;

  constructor(entries: Iterable<string | Cidr> = []) {
    for (const e of entries) this.add(e);
  }

  add(entry: string | Cidr): void {
    this.nets.push(typeof entry === 'string' ? parseCidr(entry) : entry);
    this.index = undefined;
  }

  /** The first network containing the address, or undefined (also for an unparseable address). */
  match(address: string): Cidr | undefined {
    const addr = parseAddress(address);
    if (!addr) return undefined;
    this.index ??= new CidrIndex(this.nets);
    const i = this.index.first(addr);
    return i < 0 ? undefined : this.nets[i];
  }

  has(address: string): boolean {
    return this.match(address) !== undefined;
  }

  get size(): number {
    return this.nets.length;
  }

  list(): readonly Cidr[] {
    return this.nets;
  }
}

/** Formats address bytes in canonical text (RFC 5952 for IPv6). */
export function formatAddress(family: 4 | 6, bytes: Uint8Array): string {
  if (family === 4) return `${bytes[0] ?? 0}.${bytes[1] ?? 0}.${bytes[2] ?? 0}.${bytes[3] ?? 0}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  // RFC 5952 s4.2: compress the longest run (>= 2) of zero groups, the first one on a tie.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

function parseV4(t: string): Uint8Array {
  return Uint8Array.from(t.split('.').map(Number));
}

function parseV6(t: string): Uint8Array {
  let text = t;
  const out = new Uint8Array(16);
  // A trailing dotted quad (::ffff:1.2.3.4) becomes two hex groups.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = parseV4(tail);
    text = `${text.slice(0, lastColon + 1)}${(((v4[0] ?? 0) << 8) | (v4[1] ?? 0)).toString(16)}:${(((v4[2] ?? 0) << 8) | (v4[3] ?? 0)).toString(16)}`;
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const headGroups = head ? head.split(':') : [];
  const tailGroups = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const groups = rest === undefined ? headGroups : [...headGroups, ...Array(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  groups.forEach((g: string, i: number) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  for (let i = 0; i < out.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = (out[i] ?? 0) & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}
