// Presentation helpers for CLI commands: dig-like record lines and their JSON form. No I/O beyond returning values.
import { rcodeToString, rdataToText, typeToString } from '../dns/wire/rdata.js';
import type { ResourceRecord } from '../dns/wire/types.js';

/** A record as JSON: name, TTL, type and the data in presentation form (as dig prints it). */
export function recordJson(rr: ResourceRecord): { name: string; ttl: number; type: string; data: string } {
  return { name: rr.name, ttl: rr.ttl, type: typeToString(rr.type), data: rdataToText(rr.type, rr.rdata) };
}

/** "name ttl IN TYPE rdata", as dig prints a record. */
export function formatRecord(rr: ResourceRecord): string {
  const cls = rr.class === 1 ? 'IN' : `CLASS${rr.class}`;
  return `${rr.name}\t${rr.ttl}\t${cls}\t${typeToString(rr.type)}\t${rdataToText(rr.type, rr.rdata)}`;
}

export { rcodeToString };
