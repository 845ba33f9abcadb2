// The fake authorities' zone data (test/helpers/fake-authority.ts): zone-file lines parsed with
// dns-packet's record shapes (never our own codec), indexed per zone, and the RFC 1034 section 4.3.2
// lookup that answers, refers or denies from them. Pure data, no sockets.
import net from 'node:net';
import * as dnsPacket from 'dns-packet';

/** One zone: its origin and zone-file lines ('www 300 IN A 192.0.2.1', '@ 3600 IN SOA ...'). */
export interface FakeZone {
  origin: string;
  /**
   * Lines `owner [ttl] [IN] TYPE rdata`. Owner '@' is the origin, names without a trailing dot are
   * relative to it. Delegations are NS records at a non-apex owner plus glue A/AAAA records. Types:
   * A, AAAA, NS, CNAME, DNAME, PTR, MX, TXT ("quoted" strings), SOA (on one line), SRV, DS (hex digest).
   */
  records: string[];
}

const MAX_CHASE = 8;

/** A parsed zone record in dns-packet's answer shape, plus the canonical owner. */
export interface FakeRecord {
  /** Owner as written (absolute, trailing dot). */
  name: string;
  /** Lower-case owner, for lookups. */
  key: string;
  type: string;
  ttl: number;
  data: unknown;
}

/** Lower-case, absolute, trailing dot; '.' is the root. */
export function canonical(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith('.') ? n : `${n}.`;
}

/** True when `name` equals `zone` or lies below it (both canonical). */
export function isUnder(name: string, zone: string): boolean {
  if (zone === '.') return true;
  return name === zone || name.endsWith(`.${zone}`);
}

function parentOf(name: string): string | null {
  if (name === '.') return null;
  const i = name.indexOf('.');
  const rest = name.slice(i + 1);
  return rest === '' ? '.' : rest;
}

function absolute(token: string, origin: string): string {
  if (token === '@') return origin;
  if (token.endsWith('.')) return token;
  return origin === '.' ? `${token}.` : `${token}.${origin}`;
}

/** Splits a zone line into tokens; "quoted strings" stay one token (quotes kept). */
function tokenize(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line)) !== null) out.push(m[1] !== undefined ? `"${m[1]}` : (m[2] ?? ''));
  return out;
}

function rdataFrom(type: string, rd: string[], origin: string, line: string): unknown {
  const need = (n: number): void => {
    if (rd.length !== n) throw new Error(`fake zone ${origin}: ${type} needs ${n} rdata fields: '${line}'`);
  };
  switch (type) {
    case 'A':
    case 'AAAA':
      need(1);
      if (net.isIP(rd[0] ?? '') !== (type === 'A' ? 4 : 6)) throw new Error(`fake zone ${origin}: bad address in '${line}'`);
      return rd[0];
    case 'NS':
    case 'CNAME':
    case 'DNAME':
    case 'PTR':
      need(1);
      return absolute(rd[0] ?? '', origin);
    case 'MX':
      need(2);
      return { preference: Number(rd[0]), exchange: absolute(rd[1] ?? '', origin) };
    case 'SRV':
      need(4);
      return { priority: Number(rd[0]), weight: Number(rd[1]), port: Number(rd[2]), target: absolute(rd[3] ?? '', origin) };
    case 'SOA': {
      need(7);
      const [mname, rname, serial, refresh, retry, expire, minimum] = rd as [string, string, string, string, string, string, string];
      return {
        mname: absolute(mname, origin), rname: absolute(rname, origin), serial: Number(serial), refresh: Number(refresh),
        retry: Number(retry), expire: Number(expire), minimum: Number(minimum),
      };
    }
    case 'TXT':
      if (rd.length === 0) throw new Error(`fake zone ${origin}: TXT needs a string: '${line}'`);
      return rd.map((t) => Buffer.from(t.startsWith('"') ? t.slice(1).replace(/\\(.)/g, '$1') : t, 'latin1'));
    case 'DS':
      need(4);
      return { keyTag: Number(rd[0]), algorithm: Number(rd[1]), digestType: Number(rd[2]), digest: Buffer.from(rd[3] ?? '', 'hex') };
    default:
      throw new Error(`fake zone ${origin}: unsupported type ${type} in '${line}'`);
  }
}

/** Parses a FakeZone's lines; throws on syntax errors and on owners outside the zone. */
export function parseFakeZone(zone: FakeZone): FakeRecord[] {
  const origin = canonical(zone.origin);
  const out: FakeRecord[] = [];
  for (const raw of zone.records) {
    const line = raw.replace(/;.*$/, '').trim();
    if (line === '') continue;
    const tokens = tokenize(line);
    let i = 0;
    const owner = absolute(tokens[i++] ?? '', origin);
    let ttl = 3600;
    if (/^\d+$/.test(tokens[i] ?? '')) ttl = Number(tokens[i++]);
    if ((tokens[i] ?? '').toUpperCase() === 'IN') i++;
    if (/^\d+$/.test(tokens[i] ?? '')) ttl = Number(tokens[i++]);
    const type = (tokens[i++] ?? '').toUpperCase();
    const key = canonical(owner);
    if (!isUnder(key, origin)) throw new Error(`fake zone ${origin}: owner ${owner} is outside the zone: '${raw}'`);
    out.push({ name: owner, key, type, ttl, data: rdataFrom(type, tokens.slice(i), origin, raw) });
  }
  return out;
}

export type PacketRecord = dnsPacket.Answer;

/** One zone's data indexed for the RFC 1034 section 4.3.2 lookup. */
export class ZoneIndex {
  readonly origin: string;
  private readonly nodes = new Map<string, FakeRecord[]>();
  /** Names that exist: owners and every ancestor up to the origin (empty non-terminals). */
  private readonly existing = new Set<string>();

  constructor(zone: FakeZone) {
    this.origin = canonical(zone.origin);
    for (const rec of parseFakeZone(zone)) {
      const list = this.nodes.get(rec.key) ?? [];
      list.push(rec);
      this.nodes.set(rec.key, list);
      for (let n: string | null = rec.key; n !== null && isUnder(n, this.origin); n = parentOf(n)) {
        this.existing.add(n);
        if (n === this.origin) break;
      }
    }
    if (!this.soa()) throw new Error(`fake zone ${this.origin}: no SOA at the apex`);
  }

  records(name: string, type?: string): FakeRecord[] {
    const all = this.nodes.get(name) ?? [];
    return type === undefined ? all : all.filter((r) => r.type === type);
  }

  hasNode(name: string): boolean {
    return (this.nodes.get(name)?.length ?? 0) > 0;
  }

  exists(name: string): boolean {
    return this.existing.has(name);
  }

  soa(): FakeRecord | undefined {
    return this.records(this.origin, 'SOA')[0];
  }
}

export interface LookupResult {
  rcode: number;
  aa: boolean;
  answers: PacketRecord[];
  authorities: PacketRecord[];
  additionals: PacketRecord[];
}

export function toPacket(rec: FakeRecord, owner?: string): PacketRecord {
  return { name: owner ?? rec.name, type: rec.type, class: 'IN', ttl: rec.ttl, data: rec.data } as PacketRecord;
}

/** RFC 2308 section 3: the negative answer's SOA with TTL min(SOA TTL, SOA MINIMUM). */
function negativeSoa(zone: ZoneIndex): PacketRecord {
  const soa = zone.soa();
  if (!soa) throw new Error(`fake zone ${zone.origin}: no SOA`);
  const minimum = (soa.data as { minimum: number }).minimum;
  return { name: soa.name, type: 'SOA', class: 'IN', ttl: Math.min(soa.ttl, minimum), data: soa.data } as PacketRecord;
}

/** A/AAAA for the given names found anywhere in the zone's data (glue included). */
function addressesFor(zone: ZoneIndex, names: string[]): PacketRecord[] {
  const out: PacketRecord[] = [];
  for (const name of names) {
    const key = canonical(name);
    if (!isUnder(key, zone.origin)) continue;
    for (const rec of zone.records(key)) if (rec.type === 'A' || rec.type === 'AAAA') out.push(toPacket(rec));
  }
  return out;
}

/** The authoritative lookup of RFC 1034 section 4.3.2 (steps 3a-3c) within one zone. */
export function lookupInZone(zone: ZoneIndex, qname: string, qtype: string, nxdomainEnt: boolean, depth = 0): LookupResult {
  const key = canonical(qname);
  // Walk down from just below the apex to qname: a zone cut (NS not at the apex) means a referral,
  // a DNAME strictly above qname means substitution (RFC 6672 section 2.3).
  const below = key === zone.origin ? [] : ancestorsBelow(key, zone.origin);
  for (const n of below) {
    const ns = n === zone.origin ? [] : zone.records(n, 'NS');
    if (ns.length > 0 && !(n === key && qtype === 'DS')) {
      const targets = ns.map((r) => r.data as string);
      return { rcode: 0, aa: false, answers: [], authorities: ns.map((r) => toPacket(r)), additionals: addressesFor(zone, targets) };
    }
    const dname = n === key ? undefined : zone.records(n, 'DNAME')[0];
    if (dname) {
      const target = dname.data as string;
      const prefix = qname.slice(0, qname.length - n.length);
      const synthesized = target === '.' ? prefix : `${prefix}${target}`;
      const cname: PacketRecord = { name: qname, type: 'CNAME', class: 'IN', ttl: dname.ttl, data: synthesized } as PacketRecord;
      if (synthesized.length > 254) return { rcode: 6 /* YXDOMAIN, RFC 6672 section 2.2 */, aa: true, answers: [toPacket(dname)], authorities: [], additionals: [] };
      return chase(zone, [toPacket(dname), cname], synthesized, qtype, nxdomainEnt, depth);
    }
  }
  if (zone.hasNode(key)) return answerAt(zone, key, qname, qtype, nxdomainEnt, depth);
  if (zone.exists(key)) {
    // An empty non-terminal exists (RFC 8020 section 2): NODATA, unless mimicking rbldnsd.
    return { rcode: nxdomainEnt ? 3 : 0, aa: true, answers: [], authorities: [negativeSoa(zone)], additionals: [] };
  }
  // RFC 4592: the wildcard at the closest encloser, if any.
  let encloser: string | null = parentOf(key);
  while (encloser !== null && !zone.exists(encloser)) encloser = parentOf(encloser);
  if (encloser !== null && zone.hasNode(`*.${encloser === '.' ? '' : encloser}`)) {
    return answerAt(zone, `*.${encloser === '.' ? '' : encloser}`, qname, qtype, nxdomainEnt, depth);
  }
  return { rcode: 3, aa: true, answers: [], authorities: [negativeSoa(zone)], additionals: [] };
}

/** Names from just below `origin` down to `name` inclusive, top first. */
function ancestorsBelow(name: string, origin: string): string[] {
  const out: string[] = [];
  for (let n: string | null = name; n !== null && n !== origin; n = parentOf(n)) out.unshift(n);
  return out;
}

/** Answer at an existing node `key`, owner names written as `owner` (the query's case or the wildcard's expansion). */
function answerAt(zone: ZoneIndex, key: string, owner: string, qtype: string, nxdomainEnt: boolean, depth: number): LookupResult {
  const cname = zone.records(key, 'CNAME')[0];
  if (cname && qtype !== 'CNAME') {
    return chase(zone, [toPacket(cname, owner)], cname.data as string, qtype, nxdomainEnt, depth);
  }
  const matching = qtype === 'ANY' ? zone.records(key) : zone.records(key, qtype);
  if (matching.length === 0) {
    return { rcode: 0, aa: true, answers: [], authorities: [negativeSoa(zone)], additionals: [] };
  }
  const answers = matching.map((r) => toPacket(r, owner));
  const targets: string[] = [];
  for (const r of matching) {
    if (r.type === 'NS') targets.push(r.data as string);
    if (r.type === 'MX') targets.push((r.data as { exchange: string }).exchange);
    if (r.type === 'SRV') targets.push((r.data as { target: string }).target);
  }
  return { rcode: 0, aa: true, answers, authorities: [], additionals: addressesFor(zone, targets) };
}

/** Follows a CNAME (or synthesized CNAME) within the same zone, as authoritative servers do. */
function chase(zone: ZoneIndex, chain: PacketRecord[], target: string, qtype: string, nxdomainEnt: boolean, depth: number): LookupResult {
  if (depth >= MAX_CHASE || !isUnder(canonical(target), zone.origin)) {
    return { rcode: 0, aa: true, answers: chain, authorities: [], additionals: [] };
  }
  const next = lookupInZone(zone, target, qtype, nxdomainEnt, depth + 1);
  if (!next.aa) return { rcode: 0, aa: true, answers: chain, authorities: [], additionals: [] };
  // RFC 6604: the rcode is that of the last name in the chain.
  return { rcode: next.rcode, aa: true, answers: [...chain, ...next.answers], authorities: next.authorities, additionals: next.additionals };
}
