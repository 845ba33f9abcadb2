// Typed rdata: mnemonics for types/classes/rcodes, rdata <-> typed values, rdata -> presentation
// text (as `dig +nosplit` prints it; RFC 3597 "\# len hex" for anything else; text -> rdata is
// rdata-from-text.ts). Called by the resolver facade (typed answers), the CLI, local zones and
// zone-text.ts. Fixed-layout fields go through dns-packet's per-type codecs (A, AAAA, TXT, DS);
// names never do, because its name strings are lossy: names are always read from wire labels by
// readWireName. Must not accept bad rdata.
import dnsPacket from 'dns-packet';
import { DnsError } from '../../util/errors.js';
import { readWireName } from './name.js';
import type { Name } from './types.js';

/** The dns-packet per-type codecs we use; its typings do not declare them. */
interface Codec<T> {
  encode(data: T, buf?: Buffer, offset?: number): Buffer;
  decode(buf: Buffer, offset?: number): T;
}
/** @internal Shared with rdata-from-text.ts. */
export const codecs = dnsPacket as unknown as {
  a: Codec<string>;
  aaaa: Codec<string>;
  txt: Codec<Buffer[]>;
  ds: Codec<{ keyTag: number; algorithm: number; digestType: number; digest: Buffer }>;
};

const TYPE_NAMES: ReadonlyMap<number, string> = new Map([
  [1, 'A'], [2, 'NS'], [3, 'MD'], [4, 'MF'], [5, 'CNAME'], [6, 'SOA'], [7, 'MB'], [8, 'MG'], [9, 'MR'],
  [10, 'NULL'], [11, 'WKS'], [12, 'PTR'], [13, 'HINFO'], [14, 'MINFO'], [15, 'MX'], [16, 'TXT'],
  [17, 'RP'], [18, 'AFSDB'], [19, 'X25'], [20, 'ISDN'], [21, 'RT'], [22, 'NSAP'], [23, 'NSAP-PTR'],
  [24, 'SIG'], [25, 'KEY'], [26, 'PX'], [27, 'GPOS'], [28, 'AAAA'], [29, 'LOC'], [30, 'NXT'],
  [33, 'SRV'], [35, 'NAPTR'], [36, 'KX'], [37, 'CERT'], [38, 'A6'], [39, 'DNAME'], [41, 'OPT'],
  [42, 'APL'], [43, 'DS'], [44, 'SSHFP'], [45, 'IPSECKEY'], [46, 'RRSIG'], [47, 'NSEC'],
  [48, 'DNSKEY'], [49, 'DHCID'], [50, 'NSEC3'], [51, 'NSEC3PARAM'], [52, 'TLSA'], [53, 'SMIMEA'],
  [55, 'HIP'], [59, 'CDS'], [60, 'CDNSKEY'], [61, 'OPENPGPKEY'], [62, 'CSYNC'], [63, 'ZONEMD'],
  [64, 'SVCB'], [65, 'HTTPS'], [99, 'SPF'], [104, 'NID'], [105, 'L32'], [106, 'L64'], [107, 'LP'],
  [108, 'EUI48'], [109, 'EUI64'], [249, 'TKEY'], [250, 'TSIG'], [251, 'IXFR'], [252, 'AXFR'],
  [253, 'MAILB'], [254, 'MAILA'], [255, 'ANY'], [256, 'URI'], [257, 'CAA'], [32768, 'TA'], [32769, 'DLV'],
]);
const TYPE_NUMBERS: ReadonlyMap<string, number> = new Map([...TYPE_NAMES].map(([n, s]) => [s, n]));

const CLASS_NAMES: ReadonlyMap<number, string> = new Map([[1, 'IN'], [3, 'CH'], [4, 'HS'], [254, 'NONE'], [255, 'ANY']]);
const CLASS_NUMBERS: ReadonlyMap<string, number> = new Map([...CLASS_NAMES].map(([n, s]) => [s, n]));

const RCODE_NAMES: readonly string[] = [
  'NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'YXDOMAIN', 'YXRRSET', 'NXRRSET',
  'NOTAUTH', 'NOTZONE', 'DSOTYPENI', 'RCODE12', 'RCODE13', 'RCODE14', 'RCODE15', 'BADVERS', 'BADKEY',
  'BADTIME', 'BADMODE', 'BADNAME', 'BADALG', 'BADTRUNC', 'BADCOOKIE',
];

/** Mnemonic of a type ('MX'); unknown types as 'TYPE65534' (RFC 3597 section 5). */
export function typeToString(type: number): string {
  return TYPE_NAMES.get(type) ?? `TYPE${type}`;
}

/**
 * Type number from its mnemonic, case-insensitive, or the RFC 3597 'TYPE123' form.
 * @throws DnsError DNS_ERR_BAD_TYPE for an unknown mnemonic or a number outside 0..65535.
 */
export function typeFromString(text: string): number {
  const upper = text.toUpperCase();
  const known = TYPE_NUMBERS.get(upper);
  if (known !== undefined) return known;
  const m = /^TYPE([0-9]{1,5})$/.exec(upper);
  if (m && Number(m[1]) <= 0xffff) return Number(m[1]);
  throw new DnsError('DNS_ERR_BAD_TYPE', `unknown RR type ${JSON.stringify(text)}`);
}

/** Mnemonic of a class ('IN'); unknown classes as 'CLASS42' (RFC 3597 section 5). */
export function classToString(klass: number): string {
  return CLASS_NAMES.get(klass) ?? `CLASS${klass}`;
}

/**
 * Class number from its mnemonic or 'CLASS42'; null when the text is not a class (zone files use
 * this to tell an optional class from the type that follows).
 */
export function classFromString(text: string): number | null {
  const upper = text.toUpperCase();
  const known = CLASS_NUMBERS.get(upper);
  if (known !== undefined) return known;
  const m = /^CLASS([0-9]{1,5})$/.exec(upper);
  return m && Number(m[1]) <= 0xffff ? Number(m[1]) : null;
}

/** Mnemonic of a (12-bit extended) rcode ('NXDOMAIN'); unknown as 'RCODE42'. */
export function rcodeToString(rcode: number): string {
  return RCODE_NAMES[rcode] ?? `RCODE${rcode}`;
}

function badRdata(type: number, why: string): DnsError {
  return new DnsError('DNS_ERR_FORMERR', `bad ${typeToString(type)} rdata: ${why}`);
}

/** dns-packet codecs read a 2-byte rdlength first. */
function withLength(rdata: Buffer): Buffer {
  const b = Buffer.allocUnsafe(rdata.length + 2);
  b.writeUInt16BE(rdata.length, 0);
  rdata.copy(b, 2);
  return b;
}

/** Reads an uncompressed name inside rdata (pointers are an error in self-contained rdata). */
function rdName(type: number, rdata: Buffer, pos: number): { name: Name; end: number } {
  const r = readWireName(rdata, pos, { allowPointers: false });
  if (r.end > rdata.length) throw badRdata(type, 'name runs past the rdata');
  return r;
}

function need(type: number, rdata: Buffer, pos: number, n: number): void {
  if (pos + n > rdata.length) throw badRdata(type, `truncated at byte ${pos}`);
}

function done(type: number, rdata: Buffer, pos: number): void {
  if (pos !== rdata.length) throw badRdata(type, `${rdata.length - pos} trailing bytes`);
}

/** SOA fields (RFC 1035 section 3.3.13). */
export interface SoaData {
  mname: Name;
  rname: Name;
  serial: number;
  refresh: number;
  retry: number;
  expire: number;
  minimum: number;
}

/**
 * Decodes SOA rdata.
 * @throws DnsError DNS_ERR_FORMERR unless it is exactly two names and five 32-bit fields.
 */
export function soaFields(rdata: Buffer): SoaData {
  const m = rdName(6, rdata, 0);
  const r = rdName(6, rdata, m.end);
  need(6, rdata, r.end, 20);
  done(6, rdata, r.end + 20);
  const p = r.end;
  return {
    mname: m.name,
    rname: r.name,
    serial: rdata.readUInt32BE(p),
    refresh: rdata.readUInt32BE(p + 4),
    retry: rdata.readUInt32BE(p + 8),
    expire: rdata.readUInt32BE(p + 12),
    minimum: rdata.readUInt32BE(p + 16),
  };
}

/**
 * The SOA MINIMUM field, the negative-caching TTL cap of RFC 2308 section 5. Checks the rdata as
 * soaFields does, but steps over the two names without making strings of them: every negative
 * answer reads it several times.
 */
export function soaMinimum(rdata: Buffer): number {
  const end = skipRdName(6, rdata, skipRdName(6, rdata, 0));
  need(6, rdata, end, 20);
  done(6, rdata, end + 20);
  return rdata.readUInt32BE(end + 16);
}

/** The end of the uncompressed name at `pos` in rdata; the checks of rdName (readWireName) without the string. */
function skipRdName(type: number, rdata: Buffer, pos: number): number {
  const start = pos;
  for (;;) {
    if (pos >= rdata.length) throw badRdata(type, 'name runs past the rdata');
    const len = rdata[pos] as number;
    if (len === 0) return pos + 1;
    if (len > 63) throw badRdata(type, `label length byte 0x${len.toString(16)} (no compression inside rdata)`);
    pos += 1 + len;
    if (pos - start + 1 > 255) throw badRdata(type, 'name longer than 255 bytes');
  }
}

function readU16Name(type: number, rdata: Buffer): { n: number; name: Name } {
  need(type, rdata, 0, 2);
  const r = rdName(type, rdata, 2);
  done(type, rdata, r.end);
  return { n: rdata.readUInt16BE(0), name: r.name };
}

function readSingleName(type: number, rdata: Buffer): Name {
  const r = rdName(type, rdata, 0);
  done(type, rdata, r.end);
  return r.name;
}

function readSrv(rdata: Buffer): { priority: number; weight: number; port: number; target: Name } {
  need(33, rdata, 0, 6);
  const r = rdName(33, rdata, 6);
  done(33, rdata, r.end);
  return { priority: rdata.readUInt16BE(0), weight: rdata.readUInt16BE(2), port: rdata.readUInt16BE(4), target: r.name };
}

/** Character-strings (RFC 1035 section 3.3) filling the rdata exactly. */
function readCharStrings(type: number, rdata: Buffer): Buffer[] {
  let pos = 0;
  while (pos < rdata.length) pos += 1 + (rdata[pos] as number);
  if (pos !== rdata.length) throw badRdata(type, 'character-string runs past the rdata');
  return rdata.length === 0 ? [] : codecs.txt.decode(withLength(rdata));
}

const SINGLE_NAME_TYPES = new Set([2, 3, 4, 5, 7, 8, 9, 12, 39]);
const U16_NAME_TYPES = new Set([15, 18, 21, 36]);

/**
 * Names inside the rdata (NS/CNAME/DNAME/PTR target, MX exchange, SRV target, SOA mname and
 * rname, ...), for bailiwick and glue logic; [] for types without names.
 * @throws DnsError DNS_ERR_FORMERR on malformed rdata.
 */
export function rdataNames(type: number, rdata: Buffer): Name[] {
  if (SINGLE_NAME_TYPES.has(type)) return [readSingleName(type, rdata)];
  if (U16_NAME_TYPES.has(type)) return [readU16Name(type, rdata).name];
  if (type === 33) return [readSrv(rdata).target];
  if (type === 6) {
    const s = soaFields(rdata);
    return [s.mname, s.rname];
  }
  return [];
}

/**
 * Typed value of rdata: A/AAAA -> address string; TXT/SPF -> string[] (latin1, one per
 * character-string); NS/CNAME/PTR/DNAME -> Name; MX -> { preference, exchange }; SOA -> SoaData;
 * SRV -> { priority, weight, port, target }; anything else -> rdataToText.
 * @throws DnsError DNS_ERR_FORMERR on malformed rdata.
 */
export function rdataToData(type: number, rdata: Buffer): unknown {
  switch (type) {
    case 1:
      if (rdata.length !== 4) throw badRdata(type, `${rdata.length} bytes, expected 4`);
      return codecs.a.decode(withLength(rdata));
    case 28:
      if (rdata.length !== 16) throw badRdata(type, `${rdata.length} bytes, expected 16`);
      return codecs.aaaa.decode(withLength(rdata));
    case 16:
    case 99:
      return readCharStrings(type, rdata).map((b) => b.toString('latin1'));
    case 2:
    case 5:
    case 12:
    case 39:
      return readSingleName(type, rdata);
    case 15: {
      const { n, name } = readU16Name(type, rdata);
      return { preference: n, exchange: name };
    }
    case 6:
      return soaFields(rdata);
    case 33:
      return readSrv(rdata);
    default:
      return rdataToText(type, rdata);
  }
}

/** A character-string in presentation form: quoted, '"' and '\' escaped, others as \DDD. */
function quoteCharString(b: Uint8Array): string {
  let out = '"';
  for (const c of b) {
    if (c === 0x22 || c === 0x5c) out += '\\' + String.fromCharCode(c);
    else if (c >= 0x20 && c <= 0x7e) out += String.fromCharCode(c);
    else out += '\\' + String(c).padStart(3, '0');
  }
  return out + '"';
}

function genericText(rdata: Buffer): string {
  // RFC 3597 section 5: "\# 0" for empty rdata, otherwise length then hex.
  return rdata.length === 0 ? '\\# 0' : `\\# ${rdata.length} ${rdata.toString('hex').toUpperCase()}`;
}

/** Types listed in an NSEC/NSEC3 type bitmap (RFC 4034 section 4.1.2). */
function bitmapTypes(type: number, rdata: Buffer, pos: number): string[] {
  const out: string[] = [];
  while (pos < rdata.length) {
    need(type, rdata, pos, 2);
    const win = rdata[pos] as number;
    const len = rdata[pos + 1] as number;
    if (len < 1 || len > 32) throw badRdata(type, `type bitmap window of ${len} bytes`);
    need(type, rdata, pos + 2, len);
    for (let i = 0; i < len; i++) {
      const byte = rdata[pos + 2 + i] as number;
      for (let bit = 0; bit < 8; bit++) {
        if (byte & (0x80 >> bit)) out.push(typeToString(win * 256 + i * 8 + bit));
      }
    }
    pos += 2 + len;
  }
  return out;
}

const BASE32HEX = '0123456789ABCDEFGHIJKLMNOPQRSTUV';

/** RFC 4648 section 7 without padding, as NSEC3 owner hashes are written (RFC 5155 section 3.3). */
function base32hex(b: Uint8Array): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const c of b) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 5) {
      out += BASE32HEX[(acc >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32HEX[(acc << (5 - bits)) & 31];
  return out;
}

/** RRSIG times as YYYYMMDDHHmmSS (RFC 4034 section 3.2). */
function sigTime(sec: number): string {
  return new Date(sec * 1000).toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex').toUpperCase();
}

/**
 * Presentation form of rdata, as `dig +nosplit` prints it; types without a specific format here
 * use the RFC 3597 "\# len hex" form.
 * @throws DnsError DNS_ERR_FORMERR on malformed rdata of a type with a specific format.
 */
export function rdataToText(type: number, rdata: Buffer): string {
  switch (type) {
    case 1:
    case 28:
      return rdataToData(type, rdata) as string;
    case 2: case 3: case 4: case 5: case 7: case 8: case 9: case 12: case 39:
      return readSingleName(type, rdata);
    case 15: case 18: case 21: case 36: {
      const { n, name } = readU16Name(type, rdata);
      return `${n} ${name}`;
    }
    case 6: {
      const s = soaFields(rdata);
      return `${s.mname} ${s.rname} ${s.serial} ${s.refresh} ${s.retry} ${s.expire} ${s.minimum}`;
    }
    case 14:
    case 17: {
      const a = rdName(type, rdata, 0);
      const b = rdName(type, rdata, a.end);
      done(type, rdata, b.end);
      return `${a.name} ${b.name}`;
    }
    case 13:
    case 16:
    case 99: {
      // Empty TXT rdata (no character-string at all) has no other presentation that reparses.
      if (rdata.length === 0) return genericText(rdata);
      const strings = readCharStrings(type, rdata);
      if (type === 13 && strings.length !== 2) throw badRdata(type, 'expected two character-strings');
      return strings.map(quoteCharString).join(' ');
    }
    case 33: {
      const s = readSrv(rdata);
      return `${s.priority} ${s.weight} ${s.port} ${s.target}`;
    }
    case 257: {
      // RFC 8659 section 4.1: flags, tag length, tag, value (the rest).
      need(type, rdata, 0, 2);
      const tagLen = rdata[1] as number;
      if (tagLen === 0) throw badRdata(type, 'empty tag');
      need(type, rdata, 2, tagLen);
      return `${rdata[0]} ${rdata.subarray(2, 2 + tagLen).toString('latin1')} ${quoteCharString(rdata.subarray(2 + tagLen))}`;
    }
    case 43:
    case 59:
    case 32769: {
      if (rdata.length < 5) throw badRdata(type, 'shorter than 5 bytes');
      const d = codecs.ds.decode(withLength(rdata));
      return `${d.keyTag} ${d.algorithm} ${d.digestType} ${hex(d.digest)}`;
    }
    case 48:
    case 60: {
      if (rdata.length < 5) throw badRdata(type, 'shorter than 5 bytes');
      return `${rdata.readUInt16BE(0)} ${rdata[2]} ${rdata[3]} ${rdata.subarray(4).toString('base64')}`;
    }
    case 44: {
      if (rdata.length < 3) throw badRdata(type, 'shorter than 3 bytes');
      return `${rdata[0]} ${rdata[1]} ${hex(rdata.subarray(2))}`;
    }
    case 52:
    case 53: {
      if (rdata.length < 4) throw badRdata(type, 'shorter than 4 bytes');
      return `${rdata[0]} ${rdata[1]} ${rdata[2]} ${hex(rdata.subarray(3))}`;
    }
    case 46: {
      need(type, rdata, 0, 18);
      const signer = rdName(type, rdata, 18);
      if (signer.end >= rdata.length) throw badRdata(type, 'no signature');
      return [
        typeToString(rdata.readUInt16BE(0)), rdata[2], rdata[3], rdata.readUInt32BE(4),
        sigTime(rdata.readUInt32BE(8)), sigTime(rdata.readUInt32BE(12)), rdata.readUInt16BE(16),
        signer.name, rdata.subarray(signer.end).toString('base64'),
      ].join(' ');
    }
    case 47: {
      const next = rdName(type, rdata, 0);
      return [next.name, ...bitmapTypes(type, rdata, next.end)].join(' ');
    }
    case 50:
    case 51: {
      need(type, rdata, 0, 5);
      const saltLen = rdata[4] as number;
      need(type, rdata, 5, saltLen);
      const head = `${rdata[0]} ${rdata[1]} ${rdata.readUInt16BE(2)} ${saltLen === 0 ? '-' : hex(rdata.subarray(5, 5 + saltLen))}`;
      if (type === 51) {
        done(type, rdata, 5 + saltLen);
        return head;
      }
      let pos = 5 + saltLen;
      need(type, rdata, pos, 1);
      const hashLen = rdata[pos] as number;
      need(type, rdata, pos + 1, hashLen);
      const hash = base32hex(rdata.subarray(pos + 1, pos + 1 + hashLen));
      pos += 1 + hashLen;
      return [head, hash, ...bitmapTypes(type, rdata, pos)].join(' ');
    }
    case 35: {
      // RFC 3403 section 4.1: order, preference, flags, services, regexp, replacement.
      need(type, rdata, 0, 4);
      let pos = 4;
      const strings: string[] = [];
      for (let i = 0; i < 3; i++) {
        need(type, rdata, pos, 1);
        const len = rdata[pos] as number;
        need(type, rdata, pos + 1, len);
        strings.push(quoteCharString(rdata.subarray(pos + 1, pos + 1 + len)));
        pos += 1 + len;
      }
      const repl = rdName(type, rdata, pos);
      done(type, rdata, repl.end);
      return `${rdata.readUInt16BE(0)} ${rdata.readUInt16BE(2)} ${strings.join(' ')} ${repl.name}`;
    }
    default:
      return genericText(rdata);
  }
}
