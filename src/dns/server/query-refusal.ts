// Which decoded client queries the DNS server answers with an error before any lookup: the
// opcode, the question count, the EDNS version, the class and the types no resolver asks for;
// and which clients may ask at all (dnsAllowSet: loopback and the `allow` networks).
// Used by dns-server.ts (its slow path); pure, no I/O. The rules follow Unbound's and BIND's
// answers (test/e2e/dns-unbound-parity.test.ts compares them with a real Unbound).
import { Opcode, Rcode, RRClass, RRType, type Message } from '../wire/types.js';
import { CidrSet, parseCidr } from '../../util/cidr.js';

const TYPE_TKEY = 249;
const TYPE_TSIG = 250;

/** The rcode of the error a query gets, or null when it may be answered. */
export function queryRefusal(query: Message): number | null {
  const { opcode } = query.flags;
  // Unbound's worker_check_request, in its order: TC set in a query; an opcode other than QUERY
  // and NOTIFY; not one question; records in the answer section (a NOTIFY may carry one SOA) or
  // the authority section; anything in the additional section but the one OPT (decodeMessage
  // keeps that apart).
  if (query.flags.tc) return Rcode.FORMERR;
  if (opcode !== Opcode.QUERY && opcode !== Opcode.NOTIFY) return Rcode.NOTIMP;
  const question = query.questions[0];
  if (query.questions.length !== 1 || question === undefined) return Rcode.FORMERR;
  if (query.answers.length > (opcode === Opcode.NOTIFY ? 1 : 0) || query.authorities.length > 0 || query.additionals.length > 0) return Rcode.FORMERR;
  // RFC 6891 s6.1.3: BADVERS (sent with an OPT of the highest version supported, 0).
  if (query.edns && query.edns.version > 0) return Rcode.BADVERS;
  // NOTIFY (RFC 1996) is for secondary servers: refused, as Unbound refuses it from clients it
  // was not told to take notifies from.
  if (opcode === Opcode.NOTIFY) return Rcode.REFUSED;
  if (question.class !== RRClass.IN) return Rcode.REFUSED;
  return qtypeRefusal(question.type);
}

/**
 * The rcode of the error a question of this type gets whatever its name (zone transfers, meta and
 * obsolete types), or null for a type a resolver looks up. Also used by `mxsentry lookup`.
 */
export function qtypeRefusal(qtype: number): number | null {
  // OPT (RFC 6891 s6.1.1) and TSIG (RFC 8945 s4.1, s5.1) are meta-RRs of the additional section,
  // never a question (Unbound and BIND answer FORMERR too).
  if (qtype === RRType.OPT || qtype === TYPE_TSIG) return Rcode.FORMERR;
  // Zone transfers are for authoritative servers: a refusal on either transport, as Unbound's.
  // Not FORMERR over UDP: IXFR over UDP is well-formed (RFC 1995 s2).
  if (qtype === RRType.AXFR || qtype === RRType.IXFR) return Rcode.REFUSED;
  // RFC 6895 s3.1: meta-types, only meaningful in a query to the server that defines them; never
  // sent upstream (Unbound answers these FORMERR too).
  if (qtype >= 128 && qtype <= 248) return Rcode.FORMERR;
  // MAILA/MAILB are obsolete (RFC 2505); a TKEY query (RFC 2930) negotiates keys this server has
  // no use for. NOTIMP, as BIND answers these.
  if (qtype === RRType.MAILA || qtype === RRType.MAILB || qtype === TYPE_TKEY) return Rcode.NOTIMP;
  return null;
}

/** Loopback, per family: allowed to query unless the `allow` lines say which loopback clients are (Unbound keeps its localhost default too). */
const LOOPBACK_V4 = '127.0.0.0/8';
const LOOPBACK_V6 = '::1/128';

/**
 * The networks allowed recursion: the configured `allow` networks, and per address family its
 * loopback unless an `allow` line names a loopback network of that family (then the admin chose
 * which loopback clients of that family may ask). An `allow` line for a LAN thus replaces no
 * default, so the host's own resolv.conf (127.0.0.1, ::1) keeps working.
 */
export function dnsAllowSet(allow: readonly string[]): CidrSet {
  const nets = allow.map((entry) => parseCidr(entry));
  const names4 = nets.some((n) => n.family === 4 && n.bytes[0] === 127 && n.prefix >= 8);
  const names6 = nets.some((n) => n.text === LOOPBACK_V6);
  return new CidrSet([...(names4 ? [] : [LOOPBACK_V4]), ...(names6 ? [] : [LOOPBACK_V6]), ...allow]);
}
