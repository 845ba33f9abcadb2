// Local zones with Unbound's semantics (unbound.conf(5) local-zone / local-data / local-data-ptr):
// the built-in defaults (localhost, RFC 6303 private reverse zones, RFC 6761/6762/7686/8375 special
// names) plus the admin's data file. Called by the DNS server for every class-IN query the packet
// cache does not answer, so lookup() is a Map walk over label suffixes and must stay cheap. Never resolves
// anything and never follows a CNAME: the answer is what is configured, or null (resolve normally).
import { readTextFileSync } from '../../util/read-text-file.js';
import { DnsError, describeError } from '../../util/errors.js';
import { LineProblems, type LineProblemsError } from '../../util/line-problems.js';
import { parseAddress } from '../../util/cidr.js';
import { canonicalName, labelStarts, nameToWire, parseName, isSubdomain } from '../wire/name.js';
import { parseRecordLine } from '../wire/zone-text.js';
import { RRClass, RRType, Rcode, type Name, type ResourceRecord } from '../wire/types.js';

/**
 * Zone types, as in Unbound:
 * - static: local data answers; other names in the zone get NXDOMAIN (NODATA for a name with data
 *   of other types or an empty non-terminal), with the zone's SOA.
 * - transparent: local data answers (NODATA for a data name without the type); other names resolve.
 * - typetransparent: local data answers; everything else (other names and types) resolves.
 * - redirect: the apex's data answers for the apex and every name below it.
 * - refuse / deny: local data answers; other names get REFUSED / no reply at all.
 * - always_refuse / always_nxdomain / always_nodata / always_deny: regardless of local data.
 * - nodefault: only turns off the built-in default zone of that name (see `disable`).
 */
export type LocalZoneType =
  | 'static'
  | 'transparent'
  | 'typetransparent'
  | 'redirect'
  | 'refuse'
  | 'deny'
  | 'always_refuse'
  | 'always_nxdomain'
  | 'always_nodata'
  | 'always_deny';

const ZONE_TYPES: ReadonlySet<string> = new Set<LocalZoneType>([
  'static', 'transparent', 'typetransparent', 'redirect', 'refuse', 'deny',
  'always_refuse', 'always_nxdomain', 'always_nodata', 'always_deny',
]);

/** A local answer. The server sends it with AA set when `authoritative`, or sends nothing when `drop`. */
export interface LocalAnswer {
  rcode: number;
  answers: ResourceRecord[];
  authorities: ResourceRecord[];
  additionals: ResourceRecord[];
  /** AA bit: set on every answer from a local zone, REFUSED from a refuse zone included (as Unbound sets it). */
  authoritative: boolean;
  /** deny / always_deny: no reply at all (Unbound drops these queries). */
  drop: boolean;
  /** The zone that answered (canonical), for logs and stats. */
  zone: Name;
}

/** Summary of one configured zone, for `check`/`stats` output. */
export interface LocalZoneInfo {
  name: Name;
  type: LocalZoneType;
  isDefault: boolean;
  names: number;
}

interface Zone {
  name: Name;
  type: LocalZoneType;
  isDefault: boolean;
  /** canonical owner -> type -> records */
  data: Map<Name, Map<number, ResourceRecord[]>>;
  /** Canonical ancestors of data names inside the zone, the apex included (empty non-terminals: NODATA, as Unbound). */
  ents: Set<Name>;
}

/** Unbound's default zone SOA and NS: "localhost. nobody.invalid. 1 3600 1200 604800 10800". */
const DEFAULT_TTL_SEC = 10800;
/** Unbound's TTL for local-data lines without one. */
const LOCAL_DATA_DEFAULT_TTL_SEC = 3600;

const SOA_RDATA = buildSoaRdata('localhost.', 'nobody.invalid.', [1, 3600, 1200, 604800, DEFAULT_TTL_SEC]);
const NS_RDATA = nameToWire('localhost.');

/** RFC 6303 section 4 (and RFC 7793) reverse zones, RFC 6761/6762/7686/8375 names: static, SOA + NS only. */
export const DEFAULT_STATIC_ZONES: readonly Name[] = [
  '10.in-addr.arpa.',
  ...Array.from({ length: 16 }, (_, i) => `${16 + i}.172.in-addr.arpa.`),
  '168.192.in-addr.arpa.',
  '0.in-addr.arpa.',
  '254.169.in-addr.arpa.',
  '2.0.192.in-addr.arpa.',
  '100.51.198.in-addr.arpa.',
  '113.0.203.in-addr.arpa.',
  '255.255.255.255.in-addr.arpa.',
  // RFC 7793: the RFC 6598 shared address space 100.64.0.0/10.
  ...Array.from({ length: 64 }, (_, i) => `${64 + i}.100.in-addr.arpa.`),
  // ::/128, the unspecified address.
  `${'0.'.repeat(32)}ip6.arpa.`,
  'd.f.ip6.arpa.',
  '8.e.f.ip6.arpa.',
  '9.e.f.ip6.arpa.',
  'a.e.f.ip6.arpa.',
  'b.e.f.ip6.arpa.',
  '8.b.d.0.1.0.0.2.ip6.arpa.',
  'test.',
  'invalid.',
  'local.',
  'onion.',
  'home.arpa.',
];

const LOOPBACK_V6_REVERSE: Name = `1.${'0.'.repeat(31)}ip6.arpa.`;

/** Every built-in zone name (canonical), for `disable()` validation and documentation. */
export const DEFAULT_ZONE_NAMES: readonly Name[] = [
  'localhost.', '127.in-addr.arpa.', LOOPBACK_V6_REVERSE, ...DEFAULT_STATIC_ZONES,
];

/**
 * The set of local zones and their data. Build it once per config load (SIGHUP builds a new one
 * and swaps it), then only `lookup` runs on the query path.
 */
export class LocalZones {
  private readonly zones = new Map<Name, Zone>();
  private readonly disabled = new Set<Name>();
  /** The top labels of the zones ("arpa.", "test."; "." for a root zone), built at the first lookup after a change. */
  private tops: Set<Name> | undefined;

  /** @param opts.defaults false: start without the built-in zones (tests, `--no-default-local-zones`). */
  constructor(opts: { defaults?: boolean } = {}) {
    if (opts.defaults !== false) this.addDefaults();
  }

  /**
   * Answers a query from the local zones, or null when no local zone covers the name (or the zone
   * lets it through, e.g. transparent without matching data): then resolve normally.
   * Only for class IN; the caller checks the class.
   */
  lookup(qname: Name, qtype: number): LocalAnswer | null {
    if (this.zones.size === 0) return null;
    const name = canonicalName(qname);
    // Most names lie under no local zone: one set lookup of the top label says so.
    this.tops ??= new Set([...this.zones.keys()].map((z) => topLabel(z) ?? '.'));
    if (!this.tops.has('.')) {
      const top = topLabel(name);
      if (top !== undefined && !this.tops.has(top)) return null;
    }
    const zone = this.findZone(name);
    if (!zone) return null;
    switch (zone.type) {
      case 'always_refuse': return this.refused(zone);
      case 'always_deny': return this.dropped(zone);
      case 'always_nxdomain': return this.negative(zone, Rcode.NXDOMAIN);
      case 'always_nodata': return this.negative(zone, Rcode.NOERROR);
      case 'redirect': return this.answerRedirect(zone, qname, qtype);
      default: break;
    }
    const rrsets = zone.data.get(name);
    if (rrsets) {
      const answers = pickRecords(rrsets, qtype);
      if (answers.length > 0) return this.positive(zone, answers);
      // The name exists locally without this type.
      if (zone.type === 'typetransparent') return null;
      return this.negative(zone, Rcode.NOERROR);
    }
    switch (zone.type) {
      case 'static':
        return this.negative(zone, zone.ents.has(name) ? Rcode.NOERROR : Rcode.NXDOMAIN);
      case 'refuse': return this.refused(zone);
      case 'deny': return this.dropped(zone);
      default: return null; // transparent, typetransparent
    }
  }

  /**
   * Adds (or replaces) a zone. A zone with the name of a built-in default replaces the default,
   * its data included, as in Unbound. Data already added under the new zone moves into it.
   * @throws DnsError DNS_ERR_ZONE_SYNTAX for an unknown type, DNS_ERR_BAD_NAME for a bad name.
   */
  addZone(name: string, type: string): void {
    const zoneName = canonicalName(parseName(name));
    if (type === 'nodefault') {
      this.disable(zoneName);
      return;
    }
    if (!ZONE_TYPES.has(type)) {
      throw new DnsError('DNS_ERR_ZONE_SYNTAX', `unknown local-zone type "${type}" for ${zoneName} (one of: ${[...ZONE_TYPES].join(', ')}, nodefault)`);
    }
    const zone: Zone = { name: zoneName, type: type as LocalZoneType, isDefault: false, data: new Map(), ents: new Set() };
    const old = this.zones.get(zoneName);
    if (old && !old.isDefault) {
      // Same zone configured twice: the later type wins, the data stays.
      old.type = zone.type;
      return;
    }
    const parent = this.findZone(zoneName, true);
    this.setZone(zoneName, zone);
    if (parent) {
      for (const [owner, rrsets] of [...parent.data]) {
        if (!isSubdomain(owner, zoneName)) continue;
        parent.data.delete(owner);
        for (const rrs of rrsets.values()) for (const rr of rrs) this.insert(zone, rr);
      }
      rebuildEnts(parent);
    }
  }

  /**
   * Adds one `local-data` record ("name [TTL] [IN] TYPE RDATA"; TTL defaults to 3600). It goes into
   * the closest enclosing zone; without one, a transparent zone at the record's name is created
   * (Unbound's rule).
   * @throws DnsError DNS_ERR_ZONE_SYNTAX (bad record, CNAME beside other data, data below a redirect apex).
   */
  addData(text: string): void {
    let rr: ResourceRecord;
    try {
      rr = parseRecordLine(text, { defaultTtl: LOCAL_DATA_DEFAULT_TTL_SEC });
    } catch (err) {
      // The reason alone: the record parser's code and its position in a one-line text add nothing.
      const reason = err instanceof Error ? err.message.replace(/^<record>:\d+: /, '') : describeError(err);
      throw new DnsError('DNS_ERR_ZONE_SYNTAX', `bad local-data "${text}": ${reason}`, { cause: err });
    }
    this.addRecord(rr);
  }

  /** Adds one parsed record; see addData. */
  addRecord(rr: ResourceRecord): void {
    if (rr.class !== RRClass.IN) {
      throw new DnsError('DNS_ERR_ZONE_SYNTAX', `local data must be class IN: ${rr.name} class ${rr.class}`);
    }
    const owner = canonicalName(rr.name);
    let zone = this.findZone(owner, false);
    if (!zone) {
      zone = { name: owner, type: 'transparent', isDefault: false, data: new Map(), ents: new Set() };
      this.setZone(owner, zone);
    }
    if (zone.type === 'redirect' && owner !== zone.name) {
      throw new DnsError('DNS_ERR_ZONE_SYNTAX', `local-data ${rr.name} lies below redirect zone ${zone.name}; a redirect zone only has data at its apex`);
    }
    this.insert(zone, rr);
  }

  /**
   * Adds one `local-data-ptr` line: "ADDRESS [TTL] NAME" makes the PTR record of the address's
   * reverse name (in-addr.arpa. or ip6.arpa. nibbles).
   * @throws DnsError DNS_ERR_ZONE_SYNTAX
   */
  addDataPtr(text: string): void {
    const parts = text.trim().split(/\s+/);
    const [addrText, second, third] = parts;
    if (parts.length < 2 || parts.length > 3 || addrText === undefined || second === undefined) {
      throw new DnsError('DNS_ERR_ZONE_SYNTAX', `local-data-ptr wants "ADDRESS [TTL] NAME", got "${text}"`);
    }
    const addr = parseAddress(addrText);
    if (!addr) throw new DnsError('DNS_ERR_ZONE_SYNTAX', `local-data-ptr: "${addrText}" is not an IP address`);
    let ttl = LOCAL_DATA_DEFAULT_TTL_SEC;
    let target = second;
    if (third !== undefined) {
      if (!/^\d{1,10}$/.test(second) || Number(second) > 0x7fffffff) {
        throw new DnsError('DNS_ERR_ZONE_SYNTAX', `local-data-ptr: bad TTL "${second}"`);
      }
      ttl = Number(second);
      target = third;
    }
    let rdata: Buffer;
    try {
      rdata = nameToWire(parseName(target));
    } catch (err) {
      throw new DnsError('DNS_ERR_ZONE_SYNTAX', `local-data-ptr: bad name "${target}": ${describeError(err)}`, { cause: err });
    }
    this.addRecord({ name: reverseName(addr.family, addr.bytes), type: RRType.PTR, class: RRClass.IN, ttl, rdata });
  }

  /**
   * Turns off a built-in default zone (Unbound's `local-zone: "name." nodefault`), so its names go
   * to the resolver. Names that are not defaults, or already replaced by an admin zone, are
   * remembered and otherwise ignored.
   */
  disable(zone: string): void {
    const name = canonicalName(parseName(zone));
    this.disabled.add(name);
    const existing = this.zones.get(name);
    if (existing?.isDefault) {
      this.zones.delete(name);
      this.tops = undefined;
    }
  }

  /**
   * Reads an Unbound-style file: `local-zone:`, `local-data:`, `local-data-ptr:` lines, `#`
   * comments, blank lines and a `server:` header tolerated. All zones are applied before any data,
   * so line order does not matter (as in Unbound).
   * @throws ZoneSyntaxError (DNS_ERR_ZONE_SYNTAX) naming file:line of each bad line; DnsError DNS_ERR_ZONE_FILE when unreadable.
   */
  loadFile(path: string): void {
    let text: string;
    try {
      text = readTextFileSync(path);
    } catch (err) {
      throw new DnsError('DNS_ERR_ZONE_FILE', `cannot read local zones file ${path}: ${describeError(err)}`, { cause: err });
    }
    this.loadText(text, path);
  }

  /**
   * As loadFile, from text; `file` names the source in error messages. Every bad line is reported
   * (ZoneSyntaxError), not only the first; zones and data of the good lines are applied first.
   */
  loadText(text: string, file = '<text>'): void {
    const zones: Array<{ line: number; name: string; type: string }> = [];
    const data: Array<{ line: number; kind: 'data' | 'ptr'; value: string }> = [];
    const problems = new LineProblems();
    const lines = text.split(/\r?\n/);
    for (let i = 0; i < lines.length; i++) {
      const lineNo = i + 1;
      const where = `${file}:${lineNo}`;
      try {
        const line = stripComment(lines[i] as string, where).trim();
        if (line === '' || line === 'server:') continue;
        const m = /^([a-z-]+):\s*(.*)$/.exec(line);
        if (!m) throw syntax(where, `expected "local-zone:", "local-data:" or "local-data-ptr:", got "${line}"`);
        const key = m[1] as string;
        const rest = m[2] as string;
        if (key === 'local-zone') {
          const z = /^(?:"([^"]*)"|'([^']*)'|(\S+))\s+(\S+)$/.exec(rest);
          if (!z) throw syntax(where, `local-zone wants "NAME" TYPE, got "${rest}"`);
          zones.push({ line: lineNo, name: (z[1] ?? z[2] ?? z[3]) as string, type: z[4] as string });
        } else if (key === 'local-data' || key === 'local-data-ptr') {
          data.push({ line: lineNo, kind: key === 'local-data' ? 'data' : 'ptr', value: unquote(rest, where) });
        } else {
          throw syntax(where, `unknown key "${key}:" (this file holds only local-zone, local-data and local-data-ptr)`);
        }
      } catch (err) {
        problems.add(reason(err));
      }
    }
    for (const z of zones) {
      try {
        this.addZone(z.name, z.type);
      } catch (err) {
        problems.add(`${file}:${z.line}: ${reason(err)}`);
      }
    }
    for (const d of data) {
      try {
        if (d.kind === 'data') this.addData(d.value);
        else this.addDataPtr(d.value);
      } catch (err) {
        problems.add(`${file}:${d.line}: ${reason(err)}`);
      }
    }
    problems.throwIfAny(file, (p) => new ZoneSyntaxError(p));
  }

  /** The configured zones, deepest names last within each branch (sorted by name). */
  list(): LocalZoneInfo[] {
    return [...this.zones.values()]
      .map((z) => ({ name: z.name, type: z.type, isDefault: z.isDefault, names: z.data.size }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Number of zones (defaults included). */
  get size(): number {
    return this.zones.size;
  }

  private addDefaults(): void {
    // RFC 6761 s6.3: localhost and every name below it are loopback; Unbound serves it as a redirect zone.
    const localhost = this.addDefaultZone('localhost.', 'redirect');
    this.insert(localhost, { name: 'localhost.', type: RRType.A, class: RRClass.IN, ttl: DEFAULT_TTL_SEC, rdata: Buffer.from([127, 0, 0, 1]) });
    const v6 = Buffer.alloc(16);
    v6[15] = 1;
    this.insert(localhost, { name: 'localhost.', type: RRType.AAAA, class: RRClass.IN, ttl: DEFAULT_TTL_SEC, rdata: v6 });
    const v4rev = this.addDefaultZone('127.in-addr.arpa.', 'static');
    this.insert(v4rev, { name: '1.0.0.127.in-addr.arpa.', type: RRType.PTR, class: RRClass.IN, ttl: DEFAULT_TTL_SEC, rdata: NS_RDATA });
    const v6rev = this.addDefaultZone(LOOPBACK_V6_REVERSE, 'static');
    this.insert(v6rev, { name: LOOPBACK_V6_REVERSE, type: RRType.PTR, class: RRClass.IN, ttl: DEFAULT_TTL_SEC, rdata: NS_RDATA });
    for (const name of DEFAULT_STATIC_ZONES) this.addDefaultZone(name, 'static');
  }

  private addDefaultZone(name: Name, type: LocalZoneType): Zone {
    const zone: Zone = { name, type, isDefault: true, data: new Map(), ents: new Set() };
    this.insert(zone, { name, type: RRType.SOA, class: RRClass.IN, ttl: DEFAULT_TTL_SEC, rdata: SOA_RDATA });
    this.insert(zone, { name, type: RRType.NS, class: RRClass.IN, ttl: DEFAULT_TTL_SEC, rdata: NS_RDATA });
    if (!this.disabled.has(name)) this.setZone(name, zone);
    return zone;
  }

  /** Deepest zone at or above `name` (canonical); `strictlyAbove` skips the name itself. */
  private setZone(name: Name, zone: Zone): void {
    this.zones.set(name, zone);
    this.tops = undefined;
  }

  private findZone(name: Name, strictlyAbove = false): Zone | undefined {
    if (!strictlyAbove) {
      const exact = this.zones.get(name);
      if (exact) return exact;
    }
    if (name === '.') return undefined;
    const starts = labelStarts(name);
    for (let i = 1; i < starts.length; i++) {
      const z = this.zones.get(name.slice(starts[i] as number));
      if (z) return z;
    }
    return this.zones.get('.');
  }

  private insert(zone: Zone, rr: ResourceRecord): void {
    const owner = canonicalName(rr.name);
    let rrsets = zone.data.get(owner);
    if (!rrsets) {
      rrsets = new Map();
      zone.data.set(owner, rrsets);
      addEnts(zone, owner);
    }
    const hasCname = rrsets.has(RRType.CNAME);
    if ((rr.type === RRType.CNAME && rrsets.size > 0 && !hasCname) || (rr.type !== RRType.CNAME && hasCname)) {
      throw new DnsError('DNS_ERR_ZONE_SYNTAX', `${rr.name} cannot have a CNAME and other data (RFC 1034 s3.6.2)`);
    }
    let rrs = rrsets.get(rr.type);
    if (!rrs) {
      rrs = [];
      rrsets.set(rr.type, rrs);
    }
    if (rrs.some((r) => r.rdata.equals(rr.rdata))) return; // an RRset is a set (RFC 2181 s5)
    rrs.push(rr);
  }

  private positive(zone: Zone, answers: ResourceRecord[]): LocalAnswer {
    return { rcode: Rcode.NOERROR, answers, authorities: [], additionals: [], authoritative: true, drop: false, zone: zone.name };
  }

  private negative(zone: Zone, rcode: number): LocalAnswer {
    return { rcode, answers: [], authorities: this.negativeSoa(zone), additionals: [], authoritative: true, drop: false, zone: zone.name };
  }

  private refused(zone: Zone): LocalAnswer {
    return { rcode: Rcode.REFUSED, answers: [], authorities: [], additionals: [], authoritative: true, drop: false, zone: zone.name };
  }

  private dropped(zone: Zone): LocalAnswer {
    return { rcode: Rcode.REFUSED, answers: [], authorities: [], additionals: [], authoritative: false, drop: true, zone: zone.name };
  }

  private answerRedirect(zone: Zone, qname: Name, qtype: number): LocalAnswer {
    const apex = zone.data.get(zone.name);
    if (!apex) return this.negative(zone, Rcode.NXDOMAIN);
    const records = pickRecords(apex, qtype);
    if (records.length === 0) return this.negative(zone, Rcode.NOERROR);
    // The apex's data, owned by the name asked (RFC 6761 s6.3 for localhost).
    return this.positive(zone, records.map((r) => ({ ...r, name: qname })));
  }

  /**
   * The zone's SOA for negative answers, with TTL min(SOA TTL, MINIMUM) (RFC 2308 s3); none for a
   * zone without SOA data, as Unbound answers (the default zones all have theirs).
   */
  private negativeSoa(zone: Zone): ResourceRecord[] {
    const soa = zone.data.get(zone.name)?.get(RRType.SOA)?.[0];
    if (!soa || soa.rdata.length < 20) return [];
    const minimum = soa.rdata.readUInt32BE(soa.rdata.length - 4);
    return [{ ...soa, ttl: Math.min(soa.ttl, minimum) }];
  }
}

/** Records of the type at a name: the type itself, else a CNAME (not followed), ANY -> everything. */
function pickRecords(rrsets: Map<number, ResourceRecord[]>, qtype: number): ResourceRecord[] {
  if (qtype === RRType.ANY) {
    const all: ResourceRecord[] = [];
    for (const rrs of rrsets.values()) all.push(...rrs);
    return all;
  }
  const exact = rrsets.get(qtype);
  if (exact) return exact;
  return rrsets.get(RRType.CNAME) ?? [];
}

function addEnts(zone: Zone, owner: Name): void {
  const starts = labelStarts(owner);
  for (let i = 1; i < starts.length; i++) {
    const ancestor = owner.slice(starts[i] as number);
    if (ancestor.length < zone.name.length) break;
    zone.ents.add(ancestor);
  }
}

function rebuildEnts(zone: Zone): void {
  zone.ents.clear();
  for (const owner of zone.data.keys()) addEnts(zone, owner);
}

function buildSoaRdata(mname: Name, rname: Name, numbers: [number, number, number, number, number]): Buffer {
  const m = nameToWire(mname);
  const r = nameToWire(rname);
  const out = Buffer.alloc(m.length + r.length + 20);
  m.copy(out, 0);
  r.copy(out, m.length);
  numbers.forEach((n, i) => out.writeUInt32BE(n, m.length + r.length + i * 4));
  return out;
}

/** The reverse-mapping name of an address: RFC 1035 s3.5 (in-addr.arpa.), RFC 3596 s2.5 (ip6.arpa. nibbles). */
export function reverseName(family: 4 | 6, bytes: Uint8Array): Name {
  if (family === 4) return `${bytes[3]}.${bytes[2]}.${bytes[1]}.${bytes[0]}.in-addr.arpa.`;
  let out = '';
  for (let i = 15; i >= 0; i--) {
    const b = bytes[i] as number;
    out += `${(b & 0xf).toString(16)}.${(b >> 4).toString(16)}.`;
  }
  return `${out}ip6.arpa.`;
}

/** Removes a `#` comment that is outside quotes. */
function stripComment(line: string, where: string): string {
  let quote = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote !== '') {
      if (c === '\\') i++;
      else if (c === quote) quote = '';
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '#') {
      return line.slice(0, i);
    }
  }
  if (quote !== '') throw syntax(where, `unterminated ${quote} quote`);
  return line;
}

/** `"text"` or `'text'` -> text (Unbound allows either around local-data); a bare value as is. */
function unquote(value: string, where: string): string {
  const v = value.trim();
  const first = v[0];
  if (first === '"' || first === "'") {
    if (v.length < 2 || v[v.length - 1] !== first) throw syntax(where, `value must end with ${first}: ${v}`);
    return v.slice(1, -1);
  }
  if (v === '') throw syntax(where, 'empty value');
  return v;
}

/** An error's text for a file:line message, without repeating our own code. */
function reason(err: unknown): string {
  if (err instanceof DnsError && err.code === 'DNS_ERR_ZONE_SYNTAX') return err.message;
  return describeError(err);
}

/** DNS_ERR_ZONE_SYNTAX listing every bad line of a local zones file, one per line of the message. */
export class ZoneSyntaxError extends DnsError implements LineProblemsError {
  constructor(readonly problems: readonly string[]) {
    super('DNS_ERR_ZONE_SYNTAX', problems.join('\n'));
  }
}

function syntax(where: string, message: string, cause?: unknown): DnsError {
  return new DnsError('DNS_ERR_ZONE_SYNTAX', `${where}: ${message}`, cause === undefined ? undefined : { cause });
}

/**
 * The last label of a canonical name with its dot ("com." of "www.example.com."), "." for the
 * root; undefined when the name holds an escape (an escaped dot is not a label boundary).
 */
function topLabel(name: Name): Name | undefined {
  if (name === '.') return '.';
  if (name.includes('\\')) return undefined;
  return name.slice(name.lastIndexOf('.', name.length - 2) + 1);
}
