// Classifies one upstream response for the iterator (Unbound's iter_classify_response plus the
// scrubber): drops every record outside the queried server's bailiwick, walks the CNAME/DNAME
// chain, and says whether the response is an answer, a referral, a negative answer or lame; also
// undoes the 0x20 case of a response's names. Pure: no cache, no I/O.
// RFC 1034 s5.3.3, RFC 2181 s5.4.1, RFC 2308, RFC 6672.
import { rdataCaseRestorer } from '../wire/message.js';
import { NAME_LAYOUTS } from '../wire/message-writer.js';
import { canonicalName, isSubdomain, labelCount, nameLabels, namesEqual, nameToWire, wireLength } from '../wire/name.js';
import { rcodeToString, rdataNames } from '../wire/rdata.js';
import { Rcode, RRType, type Message, type Name, type ResourceRecord } from '../wire/types.js';
import { groupRRsets, type RRset } from './rrset.js';

export type ResponseKind = 'answer' | 'cname' | 'referral' | 'nxdomain' | 'nodata' | 'yxdomain' | 'lame';

export interface Classified {
  kind: ResponseKind;
  /** The chain from the query name: CNAME/DNAME (DNAME-synthesised CNAMEs included) then the answer. */
  chain: RRset[];
  /** For 'cname': where the chain leaves what this server may answer. */
  chainTarget?: Name;
  /** For 'cname': the server also answered negatively for the (in-bailiwick) target. */
  targetNegative?: 'nxdomain' | 'nodata';
  /** SOA from the authority section for negative answers. */
  soa?: ResourceRecord;
  /** For 'referral': the child zone and its NS set. `glue`: in-bailiwick addresses of NS targets (referrals and NS answers). */
  referralZone?: Name;
  ns?: RRset;
  glue: RRset[];
  /** NS of the zone in the authority section of an authoritative answer (cacheable, lower trust). */
  authorityNs?: RRset;
  /** For 'lame': why. */
  lameReason?: string;
  /**
   * For 'lame': an answer to keep as a last resort, taken when no other server of the zone gives a
   * better one: a recursive resolver's (RA without AA, Unbound's REC_LAME), or NODATA with neither
   * AA nor an SOA. classifyResponse with `acceptLastResort` reads the same response as the answer
   * it holds (see queryServers).
   */
  lastResort?: boolean;
  /** Number of records dropped as out of bailiwick (spoofing or misconfiguration). */
  scrubbed: number;
  authoritative: boolean;
}

const MAX_CHAIN_IN_RESPONSE = 16;
const DOT_CODE = 0x2e;

/**
 * @param msg the decoded response (already matched to our query by the transport)
 * @param qname the name we asked (original case)
 * @param qtype the type we asked
 * @param zone the zone cut the queried server is authoritative for: its bailiwick
 */
export function classifyResponse(msg: Message, qname: Name, qtype: number, zone: Name, opts: { acceptLastResort?: boolean } = {}): Classified {
  const recursive = !msg.flags.aa && msg.flags.ra && opts.acceptLastResort !== true;
  const out: Classified = { kind: 'lame', chain: [], glue: [], scrubbed: 0, authoritative: msg.flags.aa };
  // A TC answer only gets here over TCP (upstream-query.ts retries UDP truncation over TCP): a server
  // that truncates even there gives nothing to rely on, not even its NODATA or NXDOMAIN (as Unbound).
  if (msg.flags.tc) return lame(out, 'truncated (TC) over TCP');
  // YXDOMAIN is read on: it answers when a DNAME's substitution would be too long (below).
  if (msg.rcode !== Rcode.NOERROR && msg.rcode !== Rcode.NXDOMAIN && msg.rcode !== Rcode.YXDOMAIN) {
    out.lameReason = rcodeToString(msg.rcode); // as dig shows it: SERVFAIL, REFUSED, ...
    return out;
  }
  const inZone = (rr: ResourceRecord): boolean => {
    if (isSubdomain(rr.name, zone)) return true;
    out.scrubbed++;
    return false;
  };
  const answers = groupRRsets(msg.answers.filter(inZone));
  const authority = groupRRsets(msg.authorities.filter(inZone));
  const additional = groupRRsets(msg.additionals.filter(inZone));

  // Walk the answer chain from qname (RFC 1034 s4.3.2 step 3, RFC 6672 s3.2 for DNAME).
  let current = qname;
  let answered = false;
  let tooLong = false;
  for (let i = 0; i < MAX_CHAIN_IN_RESPONSE; i++) {
    const dname = answers.find((s) => s.type === RRType.DNAME && isSubdomain(current, s.name) && !namesEqual(current, s.name));
    if (qtype === RRType.ANY && !dname) {
      // RFC 1035 s3.2.3: QTYPE * matches every type (a CNAME too, so nothing is followed): the
      // RRsets the server returned at the name are the answer, whichever they are (RFC 8482 s4.1).
      const atName = answers.filter((s) => namesEqual(s.name, current));
      out.chain.push(...atName);
      answered = atName.length > 0;
      break;
    }
    // The DNAME comes first: nothing but the CNAME the server synthesized from it can sit at a name
    // below it, and that CNAME is rebuilt here from the DNAME (its target may carry our 0x20 case).
    if (dname && dname.rdatas[0]) {
      const target = synthesizeDnameTarget(current, dname.name, rdataNames(RRType.DNAME, dname.rdatas[0])[0] ?? '.');
      if (!target) {
        // RFC 6672 s2.2: the substitution would exceed 255 octets; the answer is YXDOMAIN.
        out.chain.push(dname);
        tooLong = true;
        break;
      }
      out.chain.push(dname, { name: current, type: RRType.CNAME, class: dname.class, ttl: dname.ttl, rdatas: [cnameRdata(target)] });
      current = target;
      if (qtype === RRType.CNAME) break; // RFC 1034 s4.3.2 step 3a: a CNAME query is not followed
      continue;
    }
    const direct = answers.find((s) => s.type === qtype && namesEqual(s.name, current));
    if (direct) {
      out.chain.push(direct);
      answered = true;
      break;
    }
    const cname = qtype === RRType.CNAME ? undefined : answers.find((s) => s.type === RRType.CNAME && namesEqual(s.name, current));
    if (cname && cname.rdatas[0]) {
      out.chain.push(cname);
      current = rdataNames(RRType.CNAME, cname.rdatas[0])[0] ?? current;
      // A loop inside the response ends the walk at its first repeated name, so the resolution
      // reports a CNAME loop rather than an overlong chain.
      if (out.chain.some((set) => set.type === RRType.CNAME && namesEqual(set.name, current))) break;
      continue;
    }
    break;
  }

  const soa = authority.find((s) => s.type === RRType.SOA && isSubdomain(current, s.name));
  if (soa && soa.rdatas[0]) out.soa = { name: soa.name, type: soa.type, class: soa.class, ttl: soa.ttl, rdata: soa.rdatas[0] };

  if (msg.rcode === Rcode.YXDOMAIN || tooLong) {
    // Only the DNAME overflow makes YXDOMAIN an answer (from the zone's server, with AA).
    if (!(msg.rcode === Rcode.YXDOMAIN && tooLong && msg.flags.aa)) return lame(out, msg.rcode === Rcode.YXDOMAIN ? 'YXDOMAIN without an overlong DNAME substitution' : 'overlong DNAME substitution without YXDOMAIN');
    out.kind = 'yxdomain';
    return out;
  }

  // A referral: NS for a zone strictly below the server's zone that contains qname.
  const nsSets = authority.filter((s) => s.type === RRType.NS);
  const down = nsSets
    .filter((s) => isSubdomain(qname, s.name) && labelCount(s.name) > labelCount(zone))
    .sort((a, b) => labelCount(b.name) - labelCount(a.name))[0];

  if (out.chain.length > 0) {
    // Without AA and with RA the server is a recursive resolver answering from its cache: lame (as
    // Unbound's REC_LAME). Without both, some load balancers and hosting setups do answer for their
    // zone: taken, at the lower RFC 2181 s5.4.1 rank of non-authoritative answer data.
    if (recursive) return lastResortLame(out, 'recursive answer (RA without AA)');
    const last = out.chain[out.chain.length - 1]!;
    if (answered || (qtype === RRType.CNAME && last.type === RRType.CNAME && namesEqual(last.name, qname))) {
      // Without AA beside a referral to a zone below: the parent's copy of the child's data (glue,
      // or stale records its zone file still holds); the child zone's servers are asked (as Unbound).
      if (!msg.flags.aa && down) return referral(out, down, additional, answers);
      out.kind = 'answer';
      out.authorityNs = authority.find((s) => s.type === RRType.NS && isSubdomain(qname, s.name));
      // Addresses of the name servers named in an NS answer (an ANY answer may hold one) or the
      // authority NS (priming, RFC 8109).
      const nsSet = out.chain.find((s) => s.type === RRType.NS && namesEqual(s.name, current)) ?? out.authorityNs;
      if (nsSet) out.glue = addressesFor(nsSet, additional);
      return out;
    }
    out.kind = 'cname';
    out.chainTarget = current;
    if (isSubdomain(current, zone)) {
      if (msg.rcode === Rcode.NXDOMAIN) out.targetNegative = 'nxdomain';
      else if (out.soa) out.targetNegative = 'nodata';
    }
    return out;
  }

  if (msg.rcode === Rcode.NXDOMAIN) {
    // A recursive server's negative answer (with or without an SOA) is lame like its answers: it
    // speaks from its cache, so the zone's own servers are asked first (Unbound's REC_LAME).
    if (recursive) return lastResortLame(out, 'recursive NXDOMAIN (RA without AA)');
    out.kind = 'nxdomain';
    return out;
  }

  if (down && !out.soa) return referral(out, down, additional, answers);
  if (nsSets.length > 0 && !msg.flags.aa && !out.soa) {
    return lame(out, nsSets.some((s) => isSubdomain(qname, s.name)) ? 'upward referral' : 'sideways referral');
  }
  if (msg.flags.aa || out.soa) {
    if (recursive) return lastResortLame(out, 'recursive NODATA (RA without AA)');
    out.kind = 'nodata';
    out.authorityNs = nsSets.find((s) => isSubdomain(qname, s.name));
    return out;
  }
  // An authority section that held only out-of-bailiwick records (an upward or sideways referral
  // scrubbed above), or answer records that answer nothing: lame.
  if (msg.authorities.length > 0 || answers.length > 0) return lame(out, 'non-authoritative response without an answer');
  // Bare NODATA, with neither AA nor an SOA (RFC 2308 s2.2, type 3): Unbound takes it as an answer.
  // A server that answers with authority is asked first; this answer is the last resort.
  if (opts.acceptLastResort !== true) return lastResortLame(out, 'non-authoritative NODATA without SOA');
  out.kind = 'nodata';
  return out;
}

/** A/AAAA RRsets from `additional` whose owners are targets of the NS set. */
function addressesFor(ns: RRset, additional: RRset[]): RRset[] {
  const targets = new Set(ns.rdatas.map((d) => canonicalName(rdataNames(RRType.NS, d)[0] ?? '.')));
  return additional.filter((s) => (s.type === RRType.A || s.type === RRType.AAAA) && targets.has(canonicalName(s.name)));
}

/** The response as a referral to the zone of the NS set `down`, with its glue. */
function referral(out: Classified, down: RRset, additional: RRset[], answers: RRset[]): Classified {
  out.kind = 'referral';
  out.chain = [];
  out.referralZone = down.name;
  out.ns = down;
  // Glue only for the NS names themselves, and (scrubbed above) only within the referring server's
  // bailiwick; from the additional section, and from the answer section too (as Unbound's
  // delegpt_from_message), where a parent puts the glue asked for itself, not repeated below.
  const key = (s: RRset): string => `${canonicalName(s.name)}|${s.type}`;
  const inAdditional = new Set(additional.map(key));
  out.glue = addressesFor(down, [...additional, ...answers.filter((s) => !inAdditional.has(key(s)))]);
  return out;
}

function lame(out: Classified, reason: string): Classified {
  out.kind = 'lame';
  out.lameReason = reason;
  return out;
}

function lastResortLame(out: Classified, reason: string): Classified {
  out.lastResort = true;
  return lame(out, reason);
}

/** RFC 6672 s2.2: replace the DNAME owner suffix of `name` by the DNAME target; null when too long. */
export function synthesizeDnameTarget(name: Name, owner: Name, target: Name): Name | null {
  const labels = nameLabels(name);
  const keep = labels.slice(0, labels.length - labelCount(owner));
  const result = keep.length === 0 ? target : `${keep.join('.')}.${target === '.' ? '' : target}`;
  return wireLength(result) > 255 ? null : result;
}

/** `name` with the trailing labels that equal `sent`'s exactly replaced by `original`'s. */
function withSuffixCase(name: Name, sent: readonly string[], original: readonly string[]): Name {
  const l = nameLabels(name);
  let changed = false;
  for (let i = l.length - 1, j = sent.length - 1; i >= 0 && j >= 0 && l[i] === sent[j]; i--, j--) {
    l[i] = original[j]!;
    changed = true;
  }
  return changed ? `${l.join('.')}.` : name;
}

/** The CNAME rdata is the target in uncompressed wire form (types.ts contract). */
function cnameRdata(target: Name): Buffer {
  return nameToWire(target);
}

/**
 * Undoes 0x20 randomisation in a response, so cached data and client answers never show random
 * case: owner names that are the query name or one of its ancestors get the original case back;
 * other owner names and the names inside rdata (an MX or NS target the server compressed against
 * our question) get it where their trailing labels are the randomised ones, byte for byte.
 */
export function restoreCase(msg: Message, original: Name, sent: Name): void {
  // Labels only for the rarer owners below (most owners are the query name or an ancestor).
  let labels: string[] | undefined;
  let sentLabels: string[] | undefined;
  let restorer: ((type: number, rdata: Buffer) => void) | undefined;
  const fix = (rr: ResourceRecord): void => {
    // Only types with names in their rdata need the wire forms (most answers are A/AAAA alone).
    if (NAME_LAYOUTS.has(rr.type)) (restorer ??= rdataCaseRestorer(nameToWire(sent), nameToWire(original)))(rr.type, rr.rdata);
    // The usual owner: the query name, or an ancestor, in the case we sent (a pointer to our
    // question). The same offsets of the original then hold it in the original case.
    const tail = sent.length - rr.name.length;
    if (tail >= 0 && sent.endsWith(rr.name) && (tail === 0 || sent.charCodeAt(tail - 1) === DOT_CODE)) {
      rr.name = tail === 0 ? original : original.slice(tail);
      return;
    }
    labels ??= nameLabels(original);
    if (!isSubdomain(original, rr.name)) {
      rr.name = withSuffixCase(rr.name, (sentLabels ??= nameLabels(sent)), labels);
      return;
    }
    const n = labelCount(rr.name);
    rr.name = n === 0 ? '.' : `${labels.slice(labels.length - n).join('.')}.`;
  };
  msg.answers.forEach(fix);
  msg.authorities.forEach(fix);
  msg.additionals.forEach(fix);
  for (const q of msg.questions) q.name = original;
}
