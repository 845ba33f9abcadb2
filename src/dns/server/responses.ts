// The server's responses to recursion and local-zone answers: the message built from the query and
// an answer body, and the size a client takes. Used by dns-server.ts only; it encodes nothing itself.
import { Opcode, Rcode, type Message, type ResourceRecord } from '../wire/types.js';

export type ServerTransport = 'udp' | 'tcp';

/** What a response carries beyond the query's header and question. */
export interface ResponseBody {
  rcode: number;
  answers: ResourceRecord[];
  authorities: ResourceRecord[];
  additionals: ResourceRecord[];
}

/** The most bytes a UDP answer may have: the client's EDNS size clamped (RFC 6891 s6.2.5, DNS flag day 2020). */
const EDNS_UDP_SIZE = 1232;
const PLAIN_UDP_SIZE = 512;
const TCP_MAX_MESSAGE = 65535;
const EMPTY = Buffer.alloc(0);

/**
 * The response to `query`: its ID, RD and CD copied, QR and RA set, AA when `authoritative`, the
 * question as the client sent it, an OPT (udp 1232, the query's DO bit) when the query had one. An
 * extended rcode without an OPT to carry it becomes SERVFAIL.
 */
export function buildResponse(query: Message, body: ResponseBody, authoritative: boolean): Message {
  const rcode = body.rcode > 0xf && !query.edns ? Rcode.SERVFAIL : body.rcode;
  return {
    id: query.id,
    flags: { qr: true, opcode: Opcode.QUERY, aa: authoritative, tc: false, rd: query.flags.rd, ra: true, z: false, ad: false, cd: query.flags.cd },
    rcode,
    questions: query.questions,
    answers: body.answers,
    authorities: body.authorities,
    additionals: body.additionals,
    edns: query.edns ? { udpSize: EDNS_UDP_SIZE, version: 0, dnssecOk: query.edns.dnssecOk, options: EMPTY } : null,
  };
}

/** The largest answer a client takes: over UDP its EDNS size (null: none) clamped to 512..1232, or 512 without EDNS (RFC 1035 s4.2.1); 65535 over TCP. */
export function answerSizeLimit(ednsUdpSize: number | null, transport: ServerTransport): number {
  if (transport === 'tcp') return TCP_MAX_MESSAGE;
  if (ednsUdpSize === null) return PLAIN_UDP_SIZE;
  return Math.min(EDNS_UDP_SIZE, Math.max(PLAIN_UDP_SIZE, ednsUdpSize));
}
