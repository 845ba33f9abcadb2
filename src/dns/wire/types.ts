// The DNS message model shared by every dns/ module. Produced and consumed only through the codec
// in this folder (message.ts), which is the sole importer of dns-packet. Names are escaped
// presentation strings built from the wire labels, so distinct wire names never alias.

/**
 * A domain name in escaped presentation form, absolute, with a trailing dot; the root is ".".
 * Label bytes 0x21-0x7e other than '.' and '\' are literal, '.' is "\.", '\' is "\\", every other
 * byte is "\DDD" (three decimal digits). Case is kept as received; `canonicalName()` lower-cases
 * ASCII A-Z only (RFC 4343), which never changes an escape sequence.
 */
export type Name = string;

/** RR types the resolver treats specially; any other numeric type passes through opaquely. */
export const RRType = {
  A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, HINFO: 13, MX: 15, TXT: 16, AAAA: 28, SRV: 33,
  NAPTR: 35, DNAME: 39, OPT: 41, DS: 43, RRSIG: 46, NSEC: 47, DNSKEY: 48, NSEC3: 50, TLSA: 52,
  SVCB: 64, HTTPS: 65, SPF: 99, IXFR: 251, AXFR: 252, MAILB: 253, MAILA: 254, ANY: 255, CAA: 257,
} as const;

export const RRClass = { IN: 1, CH: 3, HS: 4, NONE: 254, ANY: 255 } as const;

export const Rcode = {
  NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, YXDOMAIN: 6, BADVERS: 16,
} as const;

export const Opcode = { QUERY: 0, IQUERY: 1, STATUS: 2, NOTIFY: 4, UPDATE: 5 } as const;

export interface Question {
  name: Name;
  type: number;
  class: number;
}

/**
 * One resource record. `rdata` is the uncompressed wire form: names inside the rdata of the
 * RFC 1035/3597 well-known types (NS, CNAME, SOA, PTR, MX, ... and tolerantly SRV, DNAME) are
 * expanded from compression pointers, case kept, so rdata is self-contained and comparable.
 */
export interface ResourceRecord {
  name: Name;
  type: number;
  class: number;
  ttl: number;
  rdata: Buffer;
}

/** EDNS(0) pseudo-record (RFC 6891), decoded from the OPT RR in the additional section. */
export interface Edns {
  udpSize: number;
  version: number;
  dnssecOk: boolean;
  /** Raw option bytes (code, length, data)*; kept opaque. */
  options: Buffer;
}

export interface Flags {
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  ra: boolean;
  /** The Z bit, must be zero; kept to echo nothing of it. */
  z: boolean;
  ad: boolean;
  cd: boolean;
}

/** A decoded message. `rcode` is the full 12-bit value (header 4 bits + OPT extended bits). */
export interface Message {
  id: number;
  flags: Flags;
  rcode: number;
  questions: Question[];
  answers: ResourceRecord[];
  authorities: ResourceRecord[];
  /** Additional records without the OPT pseudo-record, which is in `edns`. */
  additionals: ResourceRecord[];
  edns: Edns | null;
}

/** What the encoder returns: bytes plus where each TTL sits, for packet-cache TTL patching. */
export interface EncodedMessage {
  bytes: Buffer;
  /** Byte offsets of every RR's 32-bit TTL field (OPT excluded). */
  ttlOffsets: number[];
  /** True when the message had to be cut to fit maxSize and TC was set. */
  truncated: boolean;
  /**
   * With encodeMessage's `rotatable`: each answer RRset of 2+ records as its records' start
   * offsets and then its end. No compression pointer points into one, so its records can be
   * reordered byte-wise (rrset-roundrobin on the packet cache's copies).
   */
  rrsetRuns?: number[][];
}

/** Fast read of a query's question and EDNS facts from raw bytes, without a full decode. */
export interface QueryKey {
  id: number;
  /** canonical qname (lower case, escaped) + "|" + qtype + "|" + qclass */
  key: string;
  /** The canonical qname alone (the start of `key`). */
  qname: string;
  /** The packet cache's key: `key` + "|" + 0 or 1 for EDNS present, DO and CD, in that order. */
  cacheKey: string;
  qtype: number;
  qclass: number;
  /** Offset just past the question's QNAME (where QTYPE starts). */
  qnameEnd: number;
  /** Offset just past the whole question (QTYPE+QCLASS). */
  questionEnd: number;
  rd: boolean;
  cd: boolean;
  /** null when the query carries no OPT record. */
  ednsUdpSize: number | null;
  dnssecOk: boolean;
}
