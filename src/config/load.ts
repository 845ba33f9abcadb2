// Loads the configuration: the file (flat "key: value" lines, '#' comments, repeated keys for lists),
// then command-line flags on top, then ONE validation pass that reports every problem with its key
// and line. Called by the CLI at start and on SIGHUP; it never exits the process itself.
import { isIP } from 'node:net';
import { cidrHostBitsProblem, parseCidr } from '../util/cidr.js';
import { ConfigError, describeError } from '../util/errors.js';
import { readTextFileSync } from '../util/read-text-file.js';
import { parseName } from '../dns/wire/name.js';
import { parseDnsListSpec } from '../policy/dns-list-spec.js';
import { formatLimit, formatValue } from './format-value.js';
import { SCHEMA, keyDef, suggestKey, type KeyDef } from './schema.js';

/** A listening address. */
export interface Endpoint {
  address: string;
  port: number;
  /** As written, normalised: "127.0.0.1:53", "[::1]:53". */
  text: string;
}

/** Validated settings, keyed like the file. Values are typed by the schema's kind. */
export type ConfigValues = Record<string, unknown>;

/** One occurrence of a key, from the file (with line) or a flag. */
interface RawEntry {
  key: string;
  value: string;
  line?: number;
  source: string;
}

/** Where one value of a key was set: a file line or a flag (`source` is the file name or `--key`). */
export interface ValueOrigin {
  source: string;
  line?: number;
}

export interface LoadResult {
  values: ConfigValues;
  errors: ConfigError[];
  file?: string;
  /** Keys set by the file or a flag: where each value came from, in value order (defaults: absent). */
  origins?: Record<string, ValueOrigin[]>;
}

/** Parses a config file's text into raw entries; syntax errors are collected, not thrown. */
export function parseConfigText(text: string, file: string, errors: ConfigError[]): RawEntry[] {
  const out: RawEntry[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const stripped = stripComment(raw).trim();
    if (stripped === '') return;
    const m = /^([A-Za-z0-9][A-Za-z0-9_-]*)\s*:\s*(.*)$/.exec(stripped);
    if (!m) {
      errors.push(new ConfigError('CONFIG_ERR_SYNTAX', `${file}:${line}: expected "key: value", got "${stripped}"`, { line }));
      return;
    }
    let value = m[2]!.trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    out.push({ key: m[1]!.toLowerCase(), value, line, source: file });
  });
  return out;
}

function stripComment(line: string): string {
  let inQuote = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === '"') inQuote = !inQuote;
    else if (c === '#' && !inQuote && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i);
  }
  return line;
}

/** Problems of the file in its line order, then those of flags and of the environment (stable). */
export function inLineOrder<T extends ConfigError>(errors: readonly T[]): T[] {
  const lineOf = (e: T): number => e.line ?? Infinity;
  return errors.map((e, i) => ({ e, i })).sort((a, b) => lineOf(a.e) - lineOf(b.e) || a.i - b.i).map((x) => x.e);
}

/**
 * Builds the configuration from an optional file and flag values (already split by yargs:
 * arrays for repeatable keys). Every problem is reported; values fall back to defaults only
 * where there was no problem, and callers must refuse to start when `errors` is non-empty.
 */
export function loadConfig(opts: { file?: string; flags?: Record<string, unknown> }): LoadResult {
  const errors: ConfigError[] = [];
  let entries: RawEntry[] = [];
  if (opts.file === '') {
    // `--config "$FILE"` with FILE unset: starting on the defaults would ignore the admin's file.
    errors.push(new ConfigError('CONFIG_ERR_READ', 'the config file name is empty (--config "")'));
  } else if (opts.file !== undefined) {
    try {
      entries = parseConfigText(readTextFileSync(opts.file), opts.file, errors);
    } catch (err) {
      errors.push(new ConfigError('CONFIG_ERR_READ', `cannot read config file ${opts.file}: ${describeError(err)}`, { cause: err }));
    }
  }
  for (const e of entries) {
    if (!keyDef(e.key)) {
      const hint = suggestKey(e.key);
      errors.push(new ConfigError('CONFIG_ERR_UNKNOWN_KEY', `${e.source}:${e.line}: unknown key "${e.key}"${hint ? ` (did you mean "${hint}"?)` : ''}`, { key: e.key, line: e.line }));
    }
  }
  const values: ConfigValues = {};
  const origins: Record<string, ValueOrigin[]> = {};
  for (const def of SCHEMA) {
    const fromFile = entries.filter((e) => e.key === def.key);
    const flag = opts.flags?.[def.key];
    let chosen: RawEntry[] = fromFile;
    if (flag !== undefined && !(Array.isArray(flag) && flag.length === 0)) {
      const list = Array.isArray(flag) ? flag : [flag];
      chosen = list.map((v) => ({ key: def.key, value: String(v), source: `--${def.key}` }));
    }
    if (!def.list && chosen.length > 1) {
      const where = chosen.map((c) => (c.line ? `line ${c.line}` : c.source)).join(', ');
      const at = chosen[1]!.line !== undefined ? `${chosen[1]!.source}:${chosen[1]!.line}` : chosen[1]!.source;
      errors.push(new ConfigError('CONFIG_ERR_REPEATED', `${at}: "${def.key}" is set more than once (${where})`, { key: def.key, line: chosen[1]!.line }));
      // Every problem at once: the values themselves are checked too, so a bad one is not found
      // only after the duplicate is gone.
      for (const c of chosen) valueOrError(def, c, errors);
      continue;
    }
    if (chosen.length === 0) {
      values[def.key] = normaliseDefault(def);
      continue;
    }
    origins[def.key] = chosen.map((c) => ({ source: c.source, ...(c.line !== undefined ? { line: c.line } : {}) }));
    // A list given as one empty value is the empty list: `--dnsbl ''` turns off the file's lists for
    // one run, `--known-network ''` trusts no network. Not for a listener: the daemon would start,
    // report itself ready and answer nothing on it.
    if (def.list && chosen.length === 1 && chosen[0]!.value.trim() === '') {
      if (def.nonEmptyList) {
        const c = chosen[0]!;
        errors.push(new ConfigError('CONFIG_ERR_VALUE', `${placeOf(def, c)}: empty value: at least one address is needed (an empty list would serve nothing)`, { key: def.key, line: c.line }));
        continue;
      }
      values[def.key] = [];
      continue;
    }
    const parsed: unknown[] = [];
    for (const c of chosen) {
      const value = valueOrError(def, c, errors);
      if (value !== INVALID) parsed.push(value);
    }
    values[def.key] = def.list ? parsed : parsed[0] ?? normaliseDefault(def);
  }
  checkRetryWindow(values, origins, errors);
  checkListenerClashes(values, origins, errors);
  return { values, errors: inLineOrder(errors), origins, ...(opts.file ? { file: opts.file } : {}) };
}

/**
 * postgrey's rule, applied at each retry (greylist.ts): a triplet that never passed and was not
 * seen within the retry window starts over. A window shorter than the delay therefore restarts
 * every retry made after the delay, and greylisting defers all new mail until it bounces.
 */
function checkRetryWindow(values: ConfigValues, origins: Record<string, ValueOrigin[]>, errors: ConfigError[]): void {
  const delay = values['delay'];
  const window = values['retry-window'];
  if (typeof delay !== 'number' || typeof window !== 'number' || window >= delay) return;
  const windowDef = keyDef('retry-window') as KeyDef;
  // The delay's maximum is below the window's default, so the window was set: its line is the place.
  const origin = origins['retry-window']?.[0];
  const at = origin ? placeOf(windowDef, { key: 'retry-window', value: '', ...origin }) : 'retry-window';
  errors.push(new ConfigError(
    'CONFIG_ERR_VALUE',
    `${at}: ${formatValue(windowDef, window)} is shorter than delay (${formatLimit(keyDef('delay') as KeyDef, delay)}): a sender retrying after the delay would start over every time, so no mail could ever pass greylisting`,
    { key: 'retry-window', ...(origin?.line !== undefined ? { line: origin.line } : {}) },
  ));
}

/** The keys whose addresses the daemon listens on: one address and port can serve only one of them. */
const LISTEN_KEYS = ['dns-listen', 'policy-listen', 'metrics-listen', 'replication-listen'] as const;

/**
 * Two listeners on one address and port (the same line twice, or two keys given one address, or a
 * wildcard 0.0.0.0 / :: beside an address of its family) would fail at start with "address in use",
 * which reads as another program holding the port. Reported at the later value; port 0 (any free
 * port) never clashes.
 */
function checkListenerClashes(values: ConfigValues, origins: Record<string, ValueOrigin[]>, errors: ConfigError[]): void {
  const seen: Array<{ key: string; index: number; ep: Endpoint }> = [];
  for (const key of LISTEN_KEYS) {
    const v = values[key];
    const list = (Array.isArray(v) ? v : [v]).filter((e): e is Endpoint => typeof e === 'object' && e !== null && 'port' in e);
    list.forEach((ep, index) => {
      if (ep.port === 0) return;
      const other = seen.find((o) => o.ep.port === ep.port && addressesOverlap(o.ep.address, ep.address));
      seen.push({ key, index, ep });
      if (!other) return;
      const origin = origins[key]?.[index];
      const otherOrigin = origins[other.key]?.[other.index];
      const at = origin ? placeOf(keyDef(key) as KeyDef, { key, value: '', ...origin }) : key;
      const where = otherOrigin?.line !== undefined ? ` (line ${otherOrigin.line})` : otherOrigin ? ` (${otherOrigin.source})` : ' (its default)';
      const what = other.key === key ? `given twice${where}` : `also ${other.key}${where}${other.ep.text === ep.text ? '' : `, ${other.ep.text}`}`;
      errors.push(new ConfigError('CONFIG_ERR_VALUE', `${at}: ${ep.text} is ${what}; each listener needs its own address:port`, { key, index, ...(origin?.line !== undefined ? { line: origin.line } : {}) }));
    });
  }
}

/** True when listening on both would collide: the same address, or a wildcard and an address of its family. */
function addressesOverlap(a: string, b: string): boolean {
  if (a === b) return true;
  const family = isIP(a);
  if (family !== isIP(b)) return false;
  const wildcard = family === 4 ? '0.0.0.0' : '::';
  return a === wildcard || b === wildcard;
}

/**
 * A problem found in a value after loading (a derived setting, a file it names) placed like the
 * loader's own: prefixed with "file:line" when the key was set there (its line filled in), or
 * replacing the key with "--key" when it came from a flag.
 * The error's message must start with its key ("peer: ..."); `index` picks the value of a list key.
 */
export function placeConfigError(result: LoadResult, err: ConfigError): ConfigError {
  const origin = err.key === undefined ? undefined : result.origins?.[err.key]?.[err.index ?? 0];
  if (!origin) return err;
  // A flag (--key) names the key itself: "--key: ..." rather than "--key: key: ...".
  const flagged = origin.line === undefined && err.key !== undefined && err.message.startsWith(`${err.key}: `);
  const message = origin.line !== undefined ? `${origin.source}:${origin.line}: ${err.message}` : `${origin.source}: ${flagged ? err.message.slice(err.key!.length + 2) : err.message}`;
  return new ConfigError(err.code, message, {
    ...(err.key !== undefined ? { key: err.key } : {}),
    ...(origin.line !== undefined ? { line: origin.line } : {}),
    ...(err.index !== undefined ? { index: err.index } : {}),
    cause: err,
  });
}

function normaliseDefault(def: KeyDef): unknown {
  if (def.list) return (def.default as unknown[]).map((v) => (typeof v === 'string' ? parseValue(def, v) : v));
  return def.default;
}

const INVALID = Symbol('invalid');

/** One occurrence's parsed value, or INVALID after adding its problem to `errors`. */
function valueOrError(def: KeyDef, c: RawEntry, errors: ConfigError[]): unknown {
  try {
    return parseValue(def, c.value);
  } catch (err) {
    errors.push(new ConfigError('CONFIG_ERR_VALUE', `${placeOf(def, c)}: ${describeError(err).replace(/^[A-Z_]+: /, '')}`, { key: def.key, line: c.line }));
    return INVALID;
  }
}

/** Where a value was set, as its problems begin: "file:12: key" from a file; "--key" from a flag, which names the key already. */
function placeOf(def: KeyDef, c: RawEntry): string {
  return c.line ? `${c.source}:${c.line}: ${def.key}` : c.source;
}

/** Parses one value of a key; throws with a message that says what is expected. */
export function parseValue(def: KeyDef, text: string): unknown {
  const v = text.trim();
  switch (def.kind) {
    case 'string':
      if (v === '' && !def.emptyAllowed) throw new Error('empty value');
      if (def.problemOf) {
        const problem = def.problemOf(v);
        if (problem !== undefined) throw new Error(`"${v}" ${problem}`);
      }
      if (def.pattern && !def.pattern.test(v)) throw new Error(`"${v}" is not ${def.patternHint ?? `of the form ${String(def.pattern)}`}`);
      return v;
    case 'list-spec':
      parseDnsListSpec(v); // throws with a precise message; the text is kept as written
      return v;
    case 'path':
      if (v === '' && def.nonEmptyPath) throw new Error(`empty value: name a folder, or leave the key out for the default ${String(def.default)}`);
      return v;
    case 'int': {
      if (!/^-?\d+$/.test(v)) throw new Error(`"${v}" is not a whole number`);
      return checkRange(def, Number(v));
    }
    case 'size': {
      const m = /^(\d+)\s*([kmg]?)b?$/i.exec(v);
      if (!m) throw new Error(`"${v}" is not a size (e.g. 64m, 512k, 1g)`);
      const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
      return checkRange(def, Number(m[1]) * mult, v);
    }
    case 'bool': {
      const b = v.toLowerCase();
      if (['yes', 'true', 'on', '1'].includes(b)) return true;
      if (['no', 'false', 'off', '0'].includes(b)) return false;
      throw new Error(`"${v}" is not yes/no`);
    }
    case 'enum':
      if (!def.choices!.includes(v)) throw new Error(`"${v}" is not one of ${def.choices!.join(', ')}`);
      return v;
    case 'endpoint':
      // A single listener whose default is off (metrics-listen, replication-listen): empty is that
      // default, as the example file shows it ("#metrics-listen:") and `--metrics-listen ''` means.
      if (v === '' && !def.list && def.default === '') return '';
      return parseEndpoint(v);
    case 'duration': {
      const m = /^(\d+)\s*([smhd]?)$/i.exec(v);
      // The examples in the key's own unit: a bare number is seconds for delay, days for max-age.
      if (!m) throw new Error(def.unit === 'd' ? `"${v}" is not a duration (e.g. 35 for days, 12h, 2d)` : `"${v}" is not a duration (e.g. 60 for seconds, 90s, 12h, 2d)`);
      const unit = (m[2] || def.unit || 's').toLowerCase() as 's' | 'm' | 'h' | 'd';
      // A bare number is in the key's unit: say which, so "172800" on a day-unit key reads as days.
      const written = m[2] ? v : `${m[1]} ${unit === 'd' ? 'day' : 'second'}${m[1] === '1' ? '' : 's'}`;
      return checkRange(def, Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[unit], written);
    }
    case 'cidr': {
      const hostBits = def.refuseHostBits ? cidrHostBitsProblem(v) : undefined;
      if (hostBits) throw new Error(hostBits);
      return parseCidr(v).text;
    }
    case 'name':
      return parseName(v);
  }
}

/** Range check; the message shows the value as written and the limit in the key's own unit (64m, 30d). */
function checkRange(def: KeyDef, n: number, written = String(n)): number {
  if (def.min !== undefined && n < def.min) throw new Error(`${written} is below the minimum ${formatLimit(def, def.min)}`);
  if (def.max !== undefined && n > def.max) throw new Error(`${written} is above the maximum ${formatLimit(def, def.max)}`);
  return n;
}

/** "127.0.0.1:53", "[::1]:53", "[2001:db8::1]:5353". */
export function parseEndpoint(text: string): Endpoint {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:[\]]+):(\d+)$/.exec(text);
  if (!m) throw new Error(`"${text}" is not ADDRESS:PORT (IPv6 in brackets, as [::1]:PORT)`);
  const address = m[1]!;
  const port = Number(m[2]);
  if (isIP(address) === 0) throw new Error(`"${address}" is not an IP address`);
  if (port < 0 || port > 65535) throw new Error(`port ${port} is out of range`);
  return { address, port, text: isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}` };
}
