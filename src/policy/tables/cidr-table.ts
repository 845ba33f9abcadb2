// Postfix `cidr:` table files (cidr_table(5): "network/prefix result" lines, first match in file
// order) and plain network lists (one CIDR or address per line), for the known-networks step.
// Loaded by main.ts at start and on SIGHUP; CIDR arithmetic is util/cidr.ts. Errors name file:line
// and fail the whole load; lookups never throw.
import { readTextFile } from '../../util/read-text-file.js';
import { cidrHostBitsProblem, parseAddress, parseCidr, type Cidr } from '../../util/cidr.js';
import { CidrIndex } from '../../util/cidr-index.js';
import { PolicyError, describeError } from '../../util/errors.js';
import { LineProblems } from '../../util/line-problems.js';
import { TableSyntaxError } from './table-syntax-error.js';

/** One table line. */
export interface CidrTableEntry {
  cidr: Cidr;
  /** The result column; for a plain list line, the table's default action. */
  action: string;
  source: string;
  line: number;
}

/** A lookup hit: the network (canonical text) and its action. */
export interface CidrTableMatch {
  cidr: string;
  action: string;
  source: string;
  line: number;
}

export interface CidrTableParseOptions {
  /** Action of plain-list lines (an address or network with no result column). Default "OK". */
  defaultAction?: string;
}

/** Ordered CIDR entries; `lookup` returns the first that contains the address, like Postfix. */
export class CidrTable {
  private readonly entries: CidrTableEntry[];
  private readonly index: CidrIndex;

  constructor(entries: readonly CidrTableEntry[] = []) {
    // Not a spread push: a table of 120000+ entries (country lists) would overflow the stack.
    this.entries = entries.slice();
    this.index = new CidrIndex(this.entries.map((e) => e.cidr));
  }

  /** First matching entry for an IPv4/IPv6 address (IPv4-mapped IPv6 matches as IPv4). */
  lookup(ip: string): CidrTableMatch | undefined {
    const addr = parseAddress(ip);
    if (!addr) return undefined;
    const hit = this.entries[this.index.first(addr)];
    return hit ? { cidr: hit.cidr.text, action: hit.action, source: hit.source, line: hit.line } : undefined;
  }

  get size(): number {
    return this.entries.length;
  }

  list(): readonly CidrTableEntry[] {
    return this.entries;
  }

  /**
   * Parses cidr_table(5) text or a plain list. Lines: `network[/prefix] [result]`; IPv6 networks
   * may be written in brackets; blank lines and lines whose first non-blank character is "#" are
   * comments; a line starting with whitespace continues the previous result. As in Postfix, a
   * network with host bits set ("192.0.2.1/24") is an error. `if`/`endif` blocks are refused
   * with a clear error rather than misread. Throws TableSyntaxError (POLICY_ERR_TABLE_SYNTAX)
   * with source:line of every bad line.
   */
  static parse(text: string, source = '(inline)', options: CidrTableParseOptions = {}): CidrTable {
    const defaultAction = options.defaultAction ?? 'OK';
    const entries: CidrTableEntry[] = [];
    const problems = new LineProblems();
    const lines = text.split('\n');
    // A bad line is noted and the next one read: every problem of the file is reported at once.
    for (let i = 0; i < lines.length; i++) {
      const raw = (lines[i] ?? '').replace(/\r$/, '');
      const trimmed = raw.trim();
      const where = `${source}:${i + 1}`;
      if (trimmed === '' || trimmed.startsWith('#')) continue;
      if (/^\s/.test(raw)) {
        const last = entries[entries.length - 1];
        if (!last) problems.add(`${where}: continuation line without a preceding entry`);
        else last.action = `${last.action} ${trimmed}`.trim();
        continue;
      }
      const match = /^(\S+)(?:\s+(.*))?$/.exec(trimmed);
      const pattern = match?.[1] ?? '';
      const result = (match?.[2] ?? '').trim();
      if (/^(if|endif)$/i.test(pattern) || pattern.startsWith('!')) {
        problems.add(`${where}: "${pattern}" blocks/negation are not supported; list the networks explicitly`);
        continue;
      }
      let cidr: Cidr;
      try {
        cidr = parseCidr(pattern);
      } catch (err) {
        // The text alone: the admin reads what is wrong, the code belongs to the table's own error.
        problems.add(`${where}: ${err instanceof Error ? err.message : describeError(err)}`);
        continue;
      }
      const hostBits = cidrHostBitsProblem(pattern);
      if (hostBits) {
        problems.add(`${where}: ${hostBits}`);
        continue;
      }
      entries.push({ cidr, action: result === '' ? defaultAction : result, source, line: i + 1 });
    }
    problems.throwIfAny(source, (p) => new TableSyntaxError(p));
    return new CidrTable(entries);
  }

  /**
   * Loads files in order into one table (first match across them, in the order given). Throws
   * PolicyError POLICY_ERR_TABLE_READ for an unreadable file, POLICY_ERR_TABLE_SYNTAX (path:line).
   */
  static async load(paths: readonly string[], options: CidrTableParseOptions = {}): Promise<CidrTable> {
    const entries: CidrTableEntry[] = [];
    for (const path of paths) {
      let text: string;
      try {
        text = await readTextFile(path);
      } catch (err) {
        throw new PolicyError('POLICY_ERR_TABLE_READ', `cannot read CIDR table ${path}: ${describeError(err)}`, { cause: err });
      }
      for (const e of CidrTable.parse(text, path, options).list()) entries.push(e);
    }
    return new CidrTable(entries);
  }
}
