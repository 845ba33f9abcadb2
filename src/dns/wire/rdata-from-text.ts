// Presentation text -> rdata (RFC 1035 s5.1 master-file syntax, RFC 3597 "\# len hex" for any
// type): the parser behind zone-text.ts (local zones, root hints) and TTL fields. Must not accept
// bad rdata: every error is DNS_ERR_BAD_RDATA with the reason. The other direction is rdata.ts.
import { isIPv4, isIPv6 } from 'node:net';
import { DnsError } from '../../util/errors.js';
import { nameToWire, parseName } from './name.js';
import { codecs, typeToString } from './rdata.js';
import type { Name } from './types.js';

function badText(type: number, text: string, why: string, cause?: unknown): DnsError {
  return new DnsError(
    'DNS_ERR_BAD_RDATA',
    `bad ${typeToString(type)} rdata ${JSON.stringify(text)}: ${why}`,
    cause === undefined ? undefined : { cause },
  );
}

interface Token {
  /** Text with escapes kept (quotes removed). */
  raw: string;
  quoted: boolean;
}

/** Splits rdata text into whitespace-separated tokens and "quoted strings" (escapes kept). */
function tokenize(type: number, text: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      i++;
      continue;
    }
    const quoted = c === '"';
    let j = quoted ? i + 1 : i;
    let raw = '';
    for (;;) {
      if (j >= text.length) {
        if (quoted) throw badText(type, text, 'unterminated quoted string');
        break;
      }
      const d = text[j] as string;
      if (d === '\\') {
        if (j + 1 >= text.length) throw badText(type, text, 'dangling backslash');
        raw += d + (text[j + 1] as string);
        j += 2;
        continue;
      }
      if (quoted ? d === '"' : d === ' ' || d === '\t' || d === '\n' || d === '\r' || d === '"') break;
      raw += d;
      j++;
    }
    out.push({ raw, quoted });
    i = quoted ? j + 1 : j;
  }
  return out;
}

/** Bytes of a character-string token: \DDD and \X escapes, other characters as UTF-8. */
function charStringBytes(type: number, text: string, raw: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i] as string;
    if (c === '\\') {
      const digits = raw.slice(i + 1, i + 4);
      if (/^[0-9]{3}$/.test(digits)) {
        const v = Number(digits);
        if (v > 255) throw badText(type, text, `\\${digits} is not a byte`);
        bytes.push(v);
        i += 3;
        continue;
      }
      i++;
    }
    for (const b of Buffer.from(raw[i] as string, 'utf8')) bytes.push(b);
  }
  return Buffer.from(bytes);
}

/**
 * Parses a TTL or SOA timer: seconds, or BIND units (1w2d3h4m5s, case-insensitive).
 * @returns seconds, or null when the text is not a TTL.
 */
export function parseTtlText(text: string): number | null {
  if (/^[0-9]+$/.test(text)) {
    const v = Number(text);
    return v <= 0xffffffff ? v : null;
  }
  if (!/^([0-9]+[wdhms])+$/i.test(text)) return null;
  const mult: Record<string, number> = { w: 604800, d: 86400, h: 3600, m: 60, s: 1 };
  let total = 0;
  for (const m of text.toLowerCase().matchAll(/([0-9]+)([wdhms])/g)) total += Number(m[1]) * (mult[m[2] as string] as number);
  return total <= 0xffffffff ? total : null;
}

/** Resolves a domain-name token against the origin ('@', relative names, absolute names). */
function textName(type: number, text: string, tok: Token | undefined, origin: Name | undefined): Buffer {
  if (!tok || tok.quoted) throw badText(type, text, 'missing domain name');
  try {
    if (tok.raw === '@') return nameToWire(origin ?? '.');
    const absolute = /(^|[^\\])(\\\\)*\.$/.test(tok.raw) || tok.raw === '.';
    if (absolute || origin === undefined) return nameToWire(parseName(tok.raw));
    return nameToWire(parseName(origin === '.' ? tok.raw : `${tok.raw}.${origin}`));
  } catch (err) {
    throw badText(type, text, `bad domain name ${JSON.stringify(tok.raw)}`, err);
  }
}

function textUint(type: number, text: string, tok: Token | undefined, max: number, what: string): number {
  if (!tok || tok.quoted || !/^[0-9]+$/.test(tok.raw) || Number(tok.raw) > max) {
    throw badText(type, text, `${what} must be an integer 0..${max}`);
  }
  return Number(tok.raw);
}

function u16(v: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(v, 0);
  return b;
}

/** Hex data written in one or more unquoted tokens (zone files may split long digests); at least one byte. */
function hexField(type: number, text: string, toks: Token[]): Buffer {
  const hexText = toks.map((t) => (t.quoted ? '!' : t.raw)).join('');
  if (!/^([0-9a-fA-F]{2})+$/.test(hexText)) throw badText(type, text, 'expected hex data (an even number of hex digits)');
  return Buffer.from(hexText, 'hex');
}

/** Character-strings, each at most 255 bytes. */
function charStrings(type: number, text: string, toks: Token[]): Buffer {
  const strings = toks.map((t) => charStringBytes(type, text, t.raw));
  if (strings.some((b) => b.length > 255)) throw badText(type, text, 'character-string longer than 255 bytes');
  return Buffer.concat(strings.flatMap((b) => [Buffer.from([b.length]), b]));
}

function expectCount(type: number, text: string, toks: Token[], n: number): void {
  if (toks.length !== n) throw badText(type, text, `expected ${n} fields, got ${toks.length}`);
}

/**
 * Rdata wire form from presentation text, for zone files and local data: A, AAAA, NS, CNAME,
 * DNAME, PTR, MX, TXT/SPF ("quoted" or bare strings), SOA (timers may use 1h/1d units), SRV, CAA,
 * HINFO, NAPTR, DS/CDS, DNSKEY/CDNSKEY, SSHFP, TLSA/SMIMEA, and RFC 3597 "\# len hex" for any type. Relative names get `origin` appended; "@" is the origin;
 * without an origin every name is taken as absolute.
 * @throws DnsError DNS_ERR_BAD_RDATA with the reason.
 */
export function rdataFromText(type: number, text: string, origin?: Name): Buffer {
  const toks = tokenize(type, text);
  if (toks[0]?.raw === '\\#' && !toks[0].quoted) {
    const len = textUint(type, text, toks[1], 0xffff, 'length');
    const hexText = toks.slice(2).map((t) => t.raw).join('');
    if (!/^([0-9a-fA-F]{2})*$/.test(hexText) || hexText.length !== len * 2) {
      throw badText(type, text, `expected ${len} bytes of hex data`);
    }
    return Buffer.from(hexText, 'hex');
  }
  switch (type) {
    case 1:
    case 28: {
      expectCount(type, text, toks, 1);
      const addr = (toks[0] as Token).raw;
      if (type === 1 ? !isIPv4(addr) : !isIPv6(addr)) throw badText(type, text, 'not an IPv' + (type === 1 ? '4' : '6') + ' address');
      return (type === 1 ? codecs.a : codecs.aaaa).encode(addr).subarray(2);
    }
    case 2: case 3: case 4: case 5: case 7: case 8: case 9: case 12: case 39:
      expectCount(type, text, toks, 1);
      return textName(type, text, toks[0], origin);
    case 15: case 18: case 21: case 36:
      expectCount(type, text, toks, 2);
      return Buffer.concat([u16(textUint(type, text, toks[0], 0xffff, 'preference')), textName(type, text, toks[1], origin)]);
    case 16:
    case 99: {
      if (toks.length === 0) throw badText(type, text, 'no character-strings');
      const wire = charStrings(type, text, toks);
      if (wire.length > 0xffff) throw badText(type, text, 'rdata longer than 65535 bytes');
      return wire;
    }
    case 6: {
      expectCount(type, text, toks, 7);
      const timers = Buffer.allocUnsafe(20);
      for (let i = 0; i < 5; i++) {
        const tok = toks[2 + i] as Token;
        const v = tok.quoted ? null : parseTtlText(tok.raw);
        if (v === null) throw badText(type, text, `SOA field ${i + 3} must be a number or a TTL like 1h`);
        timers.writeUInt32BE(v, i * 4);
      }
      return Buffer.concat([textName(type, text, toks[0], origin), textName(type, text, toks[1], origin), timers]);
    }
    case 33: {
      expectCount(type, text, toks, 4);
      const head = Buffer.allocUnsafe(6);
      head.writeUInt16BE(textUint(type, text, toks[0], 0xffff, 'priority'), 0);
      head.writeUInt16BE(textUint(type, text, toks[1], 0xffff, 'weight'), 2);
      head.writeUInt16BE(textUint(type, text, toks[2], 0xffff, 'port'), 4);
      return Buffer.concat([head, textName(type, text, toks[3], origin)]);
    }
    case 257: {
      expectCount(type, text, toks, 3);
      const flags = textUint(type, text, toks[0], 255, 'flags');
      const tag = (toks[1] as Token).raw;
      // RFC 8659 section 4.1: the tag is 1-15 ASCII letters and digits.
      if (!/^[A-Za-z0-9]{1,15}$/.test(tag)) throw badText(type, text, 'tag must be 1-15 letters or digits');
      const value = charStringBytes(type, text, (toks[2] as Token).raw);
      return Buffer.concat([Buffer.from([flags, tag.length]), Buffer.from(tag, 'latin1'), value]);
    }
    case 13:
      // HINFO (RFC 1035 section 3.3.2): CPU and OS, two character-strings.
      expectCount(type, text, toks, 2);
      return charStrings(type, text, toks);
    case 35: {
      // NAPTR (RFC 3403 section 4.1): order, preference, flags, services, regexp, replacement.
      expectCount(type, text, toks, 6);
      const head = Buffer.concat([u16(textUint(type, text, toks[0], 0xffff, 'order')), u16(textUint(type, text, toks[1], 0xffff, 'preference'))]);
      return Buffer.concat([head, charStrings(type, text, toks.slice(2, 5)), textName(type, text, toks[5], origin)]);
    }
    case 43: case 59: case 32769: {
      // DS, CDS, DLV (RFC 4034 section 5.3): key tag, algorithm, digest type, digest in hex (may be split).
      if (toks.length < 4) throw badText(type, text, 'expected key tag, algorithm, digest type and digest');
      const head = Buffer.concat([u16(textUint(type, text, toks[0], 0xffff, 'key tag')), Buffer.from([textUint(type, text, toks[1], 255, 'algorithm'), textUint(type, text, toks[2], 255, 'digest type')])]);
      return Buffer.concat([head, hexField(type, text, toks.slice(3))]);
    }
    case 48: case 60: {
      // DNSKEY, CDNSKEY (RFC 4034 section 2.2): flags, protocol, algorithm, public key in base64 (may be split).
      if (toks.length < 4) throw badText(type, text, 'expected flags, protocol, algorithm and public key');
      const head = Buffer.concat([u16(textUint(type, text, toks[0], 0xffff, 'flags')), Buffer.from([textUint(type, text, toks[1], 255, 'protocol'), textUint(type, text, toks[2], 255, 'algorithm')])]);
      const b64 = toks.slice(3).map((t) => t.raw).join('');
      if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) throw badText(type, text, 'public key must be base64');
      return Buffer.concat([head, Buffer.from(b64, 'base64')]);
    }
    case 44:
      // SSHFP (RFC 4255 section 3.2): algorithm, fingerprint type, fingerprint in hex.
      if (toks.length < 3) throw badText(type, text, 'expected algorithm, fingerprint type and fingerprint');
      return Buffer.concat([Buffer.from([textUint(type, text, toks[0], 255, 'algorithm'), textUint(type, text, toks[1], 255, 'fingerprint type')]), hexField(type, text, toks.slice(2))]);
    case 52: case 53:
      // TLSA (RFC 6698 section 2.2), SMIMEA (RFC 8162): usage, selector, matching type, data in hex.
      if (toks.length < 4) throw badText(type, text, 'expected usage, selector, matching type and certificate association data');
      return Buffer.concat([
        Buffer.from([textUint(type, text, toks[0], 255, 'usage'), textUint(type, text, toks[1], 255, 'selector'), textUint(type, text, toks[2], 255, 'matching type')]),
        hexField(type, text, toks.slice(3)),
      ]);
    default:
      throw badText(type, text, `no presentation format for ${typeToString(type)} here; use "\\# len hex"`);
  }
}
