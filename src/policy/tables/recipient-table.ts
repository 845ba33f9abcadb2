// Recipient tables for step 4, in Postfix table source format (the text postmap reads) or as plain
// one-address-per-line lists. Loaded by main.ts at start and on SIGHUP; queried by
// checks/recipient-check.ts. Read-only after loading; a syntax error names file:line and fails the
// load (never a half-loaded table).
import { readTextFile } from '../../util/read-text-file.js';
import { PolicyError, describeError } from '../../util/errors.js';
import { LineProblems } from '../../util/line-problems.js';
import { TableSyntaxError } from './table-syntax-error.js';

/** Where a key came from, for log lines and `mxsentry check`. */
export interface RecipientTableMatch {
  /** The table key that matched: "user@domain" or "@domain". */
  key: string;
  source: string;
  line: number;
}

/**
 * Known recipients. Keys are "user@domain" (one address) or "@domain" (every address in the
 * domain), case-insensitive like Postfix's lookup tables. The value column of a Postfix table is
 * ignored: presence is what counts, as for relay_recipient_maps.
 */
export class RecipientTable {
  private readonly keys = new Map<string, RecipientTableMatch>();
  /** The domains the keys name: the recipients the table speaks for. */
  private readonly domainSet = new Set<string>();

  /** Adds one key; the first definition wins (like postmap, which warns on duplicates). */
  add(key: string, source = '(inline)', line = 0): void {
    const k = key.toLowerCase();
    if (!this.keys.has(k)) this.keys.set(k, { key: k, source, line });
    const at = k.lastIndexOf('@');
    if (at >= 0) this.domainSet.add(k.slice(at + 1));
  }

  /** True when some key is in this domain ("user@domain" or "@domain"), lower-case. */
  coversDomain(domain: string): boolean {
    return this.domainSet.has(domain.toLowerCase());
  }

  /**
   * Parses table text. Lines: `key [value]`; blank lines and lines whose first non-blank
   * character is "#" are comments; a line starting with whitespace continues the previous logical
   * line (Postfix table syntax) and so adds no key. Throws TableSyntaxError (POLICY_ERR_TABLE_SYNTAX)
   * with source:line of every key that is neither "user@domain" nor "@domain".
   */
  addText(text: string, source: string): void {
    const lines = text.split('\n');
    const problems = new LineProblems();
    const keys: Array<[string, number]> = [];
    for (let i = 0; i < lines.length; i++) {
      const raw = (lines[i] ?? '').replace(/\r$/, '');
      const trimmed = raw.trim();
      if (trimmed === '' || trimmed.startsWith('#')) continue;
      if (/^\s/.test(raw)) continue; // continuation of the previous entry's value
      const key = trimmed.split(/\s+/, 1)[0] ?? '';
      const problem = recipientKeyProblem(key);
      if (problem) problems.add(`${source}:${i + 1}: ${problem}: "${key.slice(0, 100)}"`);
      else keys.push([key, i + 1]);
    }
    // Every bad line at once, and nothing of a file that has one (never a half-loaded table).
    problems.throwIfAny(source, (p) => new TableSyntaxError(p));
    for (const [key, line] of keys) this.add(key, source, line);
  }

  /** Exact key lookup (lower-cased), no extension or domain fallback. */
  get(key: string): RecipientTableMatch | undefined {
    return this.keys.get(key.toLowerCase());
  }

  get size(): number {
    return this.keys.size;
  }

  /** Builds a table from text (tests, inline config). */
  static fromText(text: string, source = '(inline)'): RecipientTable {
    const table = new RecipientTable();
    table.addText(text, source);
    return table;
  }

  /**
   * Loads and merges files in order. Throws PolicyError POLICY_ERR_TABLE_READ (with the path) when
   * a file cannot be read, POLICY_ERR_TABLE_SYNTAX (path:line) for a bad line.
   */
  static async load(paths: readonly string[]): Promise<RecipientTable> {
    const table = new RecipientTable();
    for (const path of paths) {
      let text: string;
      try {
        text = await readTextFile(path);
      } catch (err) {
        throw new PolicyError('POLICY_ERR_TABLE_READ', `cannot read recipient table ${path}: ${describeError(err)}`, { cause: err });
      }
      table.addText(text, path);
    }
    return table;
  }
}

function recipientKeyProblem(key: string): string | undefined {
  const at = key.lastIndexOf('@');
  // A virtual(5) table declares a virtual alias domain with a bare "domain anything" line: it makes
  // no address of the domain valid, so it has no place in a recipient list (nor does "@domain",
  // which would accept every address).
  if (at < 0) {
    return key.includes('.')
      ? 'expected "user@domain" or "@domain"; a bare domain is not a recipient (in a copy of a virtual(5) table, delete its domain lines)'
      : 'expected "user@domain" or "@domain" (a bare user name is not supported)';
  }
  if (at === key.length - 1) return 'expected "user@domain" or "@domain" ("user@" keys are not supported)';
  const domain = key.slice(at + 1);
  if (/^\.|\.\.|\.$/.test(domain)) return 'bad domain in key';
  return undefined;
}
