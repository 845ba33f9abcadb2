// Presentation helpers for CLI commands: dig-like record lines. No I/O beyond returning strings.
import { rcodeToString, rdataToText, typeToString } from '../dns/wire/rdata.js';
import type { ResourceRecord } from '../dns/wire/types.js';

/** "name ttl IN TYPE rdata", as dig prints a record. */
export function formatRecord(rr: ResourceRecord): string {
  const cls = rr.class === 1 ? 'IN' : `CLASS${rr.class}`;
  return `${rr.name}\t${rr.ttl}\t${cls}\t${typeToString(rr.type)}\t${rdataToText(rr.type, rr.rdata)}`;
}

export { rcodeToString };
