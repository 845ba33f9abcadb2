// A master-file reader (RFC 1035 section 5) for root hints (named.root) and small local zones,
// plus the one-line form used by Unbound-style `local-data: "..."`. Called by the iterator's root
// hints loader and local zones at startup/reload. It does not follow $INCLUDE or $GENERATE (an
// error, never a silent skip) and never touches the network or the file system itself.
import { DnsError } from '../../util/errors.js';
import { parseName } from './name.js';
import { parseTtlText, rdataFromText } from './rdata-from-text.js';
import { classFromString, typeFromString } from './rdata.js';
import type { Name, ResourceRecord } from './types.js';

/** Options shared by parseZoneText and parseRecordLine. */
export interface ZoneTextOptions {
  /** Origin for relative names and "@"; default the root. */
  origin?: Name;
  /** TTL when neither the record, $TTL nor an earlier record gives one. */
  defaultTtl?: number;
  /** File name for error messages. */
  file?: string;
}

/** Unbound's TTL for local-data records written without one. */
const LOCAL_DATA_DEFAULT_TTL = 3600;
/** RFC 2181 section 8: TTLs are 0..2^31-1. */
const MAX_TTL = 0x7fffffff;

interface Entry {
  /** 1-based line where the entry starts. */
  line: number;
  /** The entry's text with comments removed and parenthesised continuation lines joined. */
  text: string;
  /** True when the first physical line starts with blank space (owner = previous owner). */
  blankOwner: boolean;
}

interface Token {
  text: string;
  start: number;
}

function syntaxError(file: string, line: number, message: string, cause?: unknown): DnsError {
  return new DnsError('DNS_ERR_ZONE_SYNTAX', `${file}:${line}: ${message}`, cause === undefined ? undefined : { cause });
}

/**
 * Splits master-file text into entries: ';' comments (outside quotes) removed, lines inside
 * parentheses joined (RFC 1035 section 5.1), parentheses replaced by blanks.
 */
function splitEntries(text: string, file: string): Entry[] {
  const entries: Entry[] = [];
  const lines = text.split(/\r?\n/);
  let current: Entry | null = null;
  let depth = 0;
  for (let n = 0; n < lines.length; n++) {
    const raw = lines[n] as string;
    let out = '';
    let inQuote = false;
    for (let i = 0; i < raw.length; i++) {
      const c = raw[i] as string;
      if (c === '\\' && i + 1 < raw.length) {
        out += c + (raw[i + 1] as string);
        i++;
        continue;
      }
      if (c === '"') inQuote = !inQuote;
      else if (!inQuote && c === ';') break;
      else if (!inQuote && c === '(') {
        depth++;
        out += ' ';
        continue;
      } else if (!inQuote && c === ')') {
        if (depth === 0) throw syntaxError(file, n + 1, "')' without '('");
        depth--;
        out += ' ';
        continue;
      }
      out += c;
    }
    if (inQuote) throw syntaxError(file, n + 1, 'unterminated quoted string');
    if (current) {
      current.text += ' ' + out;
    } else if (out.trim() !== '') {
      current = { line: n + 1, text: out, blankOwner: /^[ \t]/.test(out) };
    }
    if (current && depth === 0) {
      entries.push(current);
      current = null;
    }
  }
  if (depth > 0 && current) throw syntaxError(file, current.line, "'(' without ')'");
  return entries;
}

/** Whitespace-separated tokens with their offsets; quoted strings stay one token. */
function tokens(text: string): Token[] {
  const out: Token[] = [];
  const re = /"(?:[^"\\]|\\.)*"|(?:[^\s"\\]|\\.)+/g;
  for (const m of text.matchAll(re)) out.push({ text: m[0], start: m.index ?? 0 });
  return out;
}

function absoluteName(text: string, origin: Name, file: string, line: number): Name {
  try {
    if (text === '@') return origin;
    if (/(^|[^\\])(\\\\)*\.$/.test(text)) return parseName(text);
    return parseName(origin === '.' ? `${text}.` : `${text}.${origin}`);
  } catch (err) {
    throw syntaxError(file, line, `bad domain name ${JSON.stringify(text)}`, err);
  }
}

function ttlValue(text: string, file: string, line: number): number | null {
  const ttl = parseTtlText(text);
  if (ttl !== null && ttl > MAX_TTL) throw syntaxError(file, line, `TTL ${text} is above ${MAX_TTL}`);
  return ttl;
}

/** Parser state carried from one entry to the next. */
interface State {
  origin: Name;
  dollarTtl: number | null;
  lastTtl: number | null;
  lastOwner: Name | null;
  lastClass: number;
  defaultTtl: number | undefined;
  file: string;
}

function parseEntry(entry: Entry, st: State): ResourceRecord | null {
  const { file, line } = { file: st.file, line: entry.line };
  const toks = tokens(entry.text);
  const first = toks[0];
  if (!first) return null;
  if (!entry.blankOwner && first.text.startsWith('$')) {
    const directive = first.text.toUpperCase();
    const arg = toks[1]?.text;
    if (directive === '$ORIGIN') {
      if (!arg || toks.length > 2) throw syntaxError(file, line, '$ORIGIN takes one domain name');
      st.origin = absoluteName(arg, st.origin, file, line);
      return null;
    }
    if (directive === '$TTL') {
      const ttl = arg && toks.length === 2 ? ttlValue(arg, file, line) : null;
      if (ttl === null) throw syntaxError(file, line, '$TTL takes one TTL (seconds or units like 1h)');
      st.dollarTtl = ttl;
      return null;
    }
    throw syntaxError(file, line, `unsupported directive ${first.text}`);
  }
  let i = 0;
  let owner: Name;
  if (entry.blankOwner) {
    if (st.lastOwner === null) throw syntaxError(file, line, 'record without an owner name and no previous owner');
    owner = st.lastOwner;
  } else {
    owner = absoluteName(first.text, st.origin, file, line);
    i = 1;
  }
  let ttl: number | null = null;
  let klass: number | null = null;
  // RFC 1035 section 5.1: [<TTL>] [<class>] or [<class>] [<TTL>] before the type.
  for (let k = 0; k < 2; k++) {
    const tok = toks[i];
    if (!tok) break;
    const asTtl: number | null = ttl === null ? ttlValue(tok.text, file, line) : null;
    if (asTtl !== null) {
      ttl = asTtl;
      i++;
      continue;
    }
    const asClass: number | null = klass === null ? classFromString(tok.text) : null;
    if (asClass !== null) {
      klass = asClass;
      i++;
      continue;
    }
    break;
  }
  const typeTok = toks[i];
  if (!typeTok) throw syntaxError(file, line, 'missing record type');
  let type: number;
  try {
    type = typeFromString(typeTok.text);
  } catch (err) {
    throw syntaxError(file, line, `unknown record type ${JSON.stringify(typeTok.text)}`, err);
  }
  const rdataTok = toks[i + 1];
  if (!rdataTok) throw syntaxError(file, line, `missing rdata for ${typeTok.text}`);
  let rdata: Buffer;
  try {
    rdata = rdataFromText(type, entry.text.slice(rdataTok.start), st.origin);
  } catch (err) {
    const why = err instanceof DnsError ? err.message : String(err);
    throw syntaxError(file, line, why, err);
  }
  if (ttl === null) ttl = st.dollarTtl ?? st.lastTtl ?? st.defaultTtl ?? null;
  if (ttl === null) throw syntaxError(file, line, 'no TTL: give one on the record or with $TTL');
  if (klass === null) klass = st.lastClass;
  st.lastOwner = owner;
  st.lastTtl = ttl;
  st.lastClass = klass;
  return { name: owner, type, class: klass, ttl, rdata };
}

/**
 * Reads master-file text: ';' comments, blank owner = previous owner, optional class and TTL in
 * either order, $ORIGIN, $TTL, parentheses spanning lines. A record without a TTL takes $TTL,
 * else the previous record's TTL (RFC 1035 section 5.1), else `defaultTtl`.
 * @throws DnsError DNS_ERR_ZONE_SYNTAX with "file:line: reason".
 */
export function parseZoneText(text: string, opts?: ZoneTextOptions): ResourceRecord[] {
  const file = opts?.file ?? '<zone text>';
  const st: State = {
    origin: opts?.origin ?? '.',
    dollarTtl: null,
    lastTtl: null,
    lastOwner: null,
    lastClass: 1,
    defaultTtl: opts?.defaultTtl,
    file,
  };
  const out: ResourceRecord[] = [];
  for (const entry of splitEntries(text, file)) {
    const rr = parseEntry(entry, st);
    if (rr) out.push(rr);
  }
  return out;
}

/**
 * One "name [ttl] [class] type rdata" record, as in Unbound's `local-data: "..."`. The owner is
 * required; the TTL defaults to `defaultTtl`, else 3600 like Unbound.
 * @throws DnsError DNS_ERR_ZONE_SYNTAX unless the line holds exactly one record.
 */
export function parseRecordLine(line: string, opts?: ZoneTextOptions): ResourceRecord {
  const file = opts?.file ?? '<record>';
  if (/^[ \t]/.test(line)) throw syntaxError(file, 1, 'record line must start with its owner name');
  const records = parseZoneText(line, { ...opts, file, defaultTtl: opts?.defaultTtl ?? LOCAL_DATA_DEFAULT_TTL });
  const rr = records[0];
  if (records.length !== 1 || !rr) throw syntaxError(file, 1, `expected exactly one record, got ${records.length}`);
  return rr;
}
