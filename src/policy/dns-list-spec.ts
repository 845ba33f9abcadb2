// Parser for DNSBL/DNSWL list entries in Postfix postscreen `dnsbl_sites` syntax
// (`zone[=filter][*weight]`), used by the config layer and DnsListChecker. Pure: no DNS, no I/O.
// It validates and describes a list; it must not decide anything about answers beyond the filter
// match, which the checker applies (error codes and the 127.0.0.0/8 rule live in dns-lists.ts).
import { PolicyError } from '../util/errors.js';

/** An inclusive range of one answer octet. */
export interface OctetRange {
  lo: number;
  hi: number;
}

/**
 * One parsed list. `filter` is null when any (non-error) 127.0.0.0/8 answer counts; otherwise four
 * octet patterns, each a union of inclusive ranges, that an A answer must match octet by octet.
 */
export interface DnsListSpec {
  /** Lower-case zone without trailing dot, e.g. "zen.spamhaus.org". */
  zone: string;
  filter: readonly (readonly OctetRange[])[] | null;
  /** Integer weight; default 1. Negative weights are allowed (postscreen uses them for DNSWLs). */
  weight: number;
  /** The spec as written (trimmed), for logs and stats. */
  text: string;
  /** Zone plus filter without the weight: the name shown to admins ("list.dnswl.org=127.0.[0..255].[2;3]"). */
  name: string;
}

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

function bad(spec: string, why: string): PolicyError {
  return new PolicyError('POLICY_ERR_BAD_LIST_SPEC', `bad DNS list "${spec}": ${why}`);
}

/**
 * Parses one `dnsbl_sites` entry: `zone`, `zone=127.0.0.2`, `zone=127.0.0.[2..11]`,
 * `zone=127.0.[0..255].[2;4;6]`, `zone*3`, `zone=127.0.0.[2..11]*3`, `zone*-2`. Inside brackets,
 * ";"-separated numbers and `lo..hi` ranges may be mixed (`[1;3..5]`), as in postscreen(8).
 * Throws PolicyError POLICY_ERR_BAD_LIST_SPEC naming the spec and the problem.
 */
export function parseDnsListSpec(input: string): DnsListSpec {
  const text = input.trim();
  if (text === '') throw bad(input, 'empty entry');
  // postscreen_dnsbl_sites separates its entries with commas or whitespace; here each list is its own
  // value of a repeatable key, so a pasted postscreen line is refused with the way to write it.
  // A comma inside [] is a filter typo for ";", reported by the filter parser.
  const outsideBrackets = text.replace(/\[[^\]]*\]/g, '');
  if (/[\s,]/.test(outsideBrackets)) {
    const what = /\s/.test(outsideBrackets) ? 'whitespace' : '","';
    throw bad(text, `contains ${what}: one list per entry (postscreen's "a, b" is two dnsbl lines, one per list)`);
  }

  let rest = text;
  let weight = 1;
  const star = rest.lastIndexOf('*');
  if (star >= 0) {
    const w = rest.slice(star + 1);
    if (!/^[+-]?\d{1,6}$/.test(w)) throw bad(text, `weight "${w}" is not an integer`);
    weight = Number(w);
    if (weight === 0) throw bad(text, 'weight 0 makes the entry count for nothing; remove it, or give it a weight');
    rest = rest.slice(0, star);
  }

  let filter: OctetRange[][] | null = null;
  let filterText = '';
  const eq = rest.indexOf('=');
  let zoneText = rest;
  if (eq >= 0) {
    zoneText = rest.slice(0, eq);
    filterText = rest.slice(eq + 1);
    filter = parseFilter(text, filterText);
  }

  const zone = canonicalListZone(zoneText);
  if (zone === '') throw bad(text, 'missing zone name');
  if (zone.length > 253) throw bad(text, 'zone name longer than 253 characters');
  const labels = zone.split('.');
  if (labels.length < 2) throw bad(text, `zone "${zoneText}" is not a domain name (needs at least two labels)`);
  for (const label of labels) {
    if (!LABEL.test(label)) throw bad(text, `zone "${zoneText}" has an invalid label "${label}"`);
  }
  return { zone, filter, weight, text, name: filter ? `${zone}=${filterText}` : zone };
}

/** Parses a list of entries, e.g. a config array; the first bad one throws. */
export function parseDnsListSpecs(inputs: readonly string[]): DnsListSpec[] {
  return inputs.map(parseDnsListSpec);
}

/** True when the IPv4 answer (four octets) matches the spec's filter (always true without a filter). */
export function filterMatches(spec: DnsListSpec, octets: readonly number[]): boolean {
  if (!spec.filter) return true;
  for (let i = 0; i < 4; i++) {
    const v = octets[i];
    const ranges = spec.filter[i];
    if (v === undefined || !ranges || !ranges.some((r) => v >= r.lo && v <= r.hi)) return false;
  }
  return true;
}

function parseFilter(spec: string, filterText: string): OctetRange[][] {
  if (filterText === '') throw bad(spec, 'empty filter after "="');
  const parts = splitOctets(filterText);
  if (!parts) throw bad(spec, `filter "${filterText}" has an unbalanced "[" or "]"`);
  if (parts.length !== 4) throw bad(spec, `filter "${filterText}" must have four octets (d.d.d.d)`);
  const octets = parts.map((p, i) => parseOctetPattern(spec, p, i + 1));
  // Only 127.0.0.0/8 answers are ever considered (RFC 5782 s2.1), so a filter outside it is a typo.
  if (!(octets[0] ?? []).some((r) => 127 >= r.lo && 127 <= r.hi)) {
    throw bad(spec, `filter "${filterText}" can never match: list answers are in 127.0.0.0/8`);
  }
  return octets;
}

/** Splits "127.0.[0..255].[2;4]" on the dots outside brackets; null when brackets do not balance. */
function splitOctets(text: string): string[] | null {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '[') depth++;
    else if (ch === ']') depth--;
    if (depth < 0 || depth > 1) return null;
    if (ch === '.' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  if (depth !== 0) return null;
  parts.push(cur);
  return parts;
}

function parseOctetPattern(spec: string, p: string, pos: number): OctetRange[] {
  if (/^\d{1,3}$/.test(p)) {
    const v = octetValue(spec, p, pos);
    return [{ lo: v, hi: v }];
  }
  const m = /^\[([^\]]*)\]$/.exec(p);
  if (!m) throw bad(spec, `octet ${pos} "${p}" is neither a number nor a [..] pattern`);
  const body = m[1] ?? '';
  if (body === '') throw bad(spec, `octet ${pos} has an empty pattern "[]"`);
  const ranges: OctetRange[] = [];
  for (const item of body.split(';')) {
    const r = /^(\d{1,3})\.\.(\d{1,3})$/.exec(item);
    if (r) {
      const lo = octetValue(spec, r[1] ?? '', pos);
      const hi = octetValue(spec, r[2] ?? '', pos);
      if (lo > hi) throw bad(spec, `octet ${pos} range "${item}" runs backwards`);
      ranges.push({ lo, hi });
    } else if (/^\d{1,3}$/.test(item)) {
      const v = octetValue(spec, item, pos);
      ranges.push({ lo: v, hi: v });
    } else {
      throw bad(spec, `octet ${pos} pattern item "${item}" is not a number or a lo..hi range`);
    }
  }
  return ranges;
}

function octetValue(spec: string, digits: string, pos: number): number {
  const v = Number(digits);
  if (v > 255) throw bad(spec, `octet ${pos} value ${digits} is larger than 255`);
  return v;
}

/** A list zone as DnsListSpec.zone holds it: lower case, without a final dot. */
export function canonicalListZone(text: string): string {
  return text.trim().toLowerCase().replace(/\.$/, '');
}

/**
 * A dnsbl-reply-name value ZONE=SHOWN (validated by the config schema) as the canonical zone, to
 * match DnsListSpec.zone, and the name shown in its place.
 */
export function parseReplyName(value: string): { zone: string; shown: string } {
  const eq = value.indexOf('=');
  return { zone: canonicalListZone(value.slice(0, Math.max(0, eq))), shown: value.slice(eq + 1).trim().replace(/\.$/, '') };
}
