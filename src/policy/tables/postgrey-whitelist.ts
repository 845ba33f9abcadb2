// Client and recipient whitelists in postgrey's file formats (whitelist_clients,
// whitelist_recipients), so /etc/postgrey/whitelist_clients works unchanged. Loaded at start and
// on SIGHUP by the wiring; consulted by the greylist check (step 10) before the store.
// Parsing follows postgrey 1.37's read_clients_whitelists / read_recipients_whitelists; it must not
// touch the network (client names come from Postfix's reverse lookup, never from us).
import { readTextFile } from '../../util/read-text-file.js';
import { CidrSet, parseCidr, type Cidr } from '../../util/cidr.js';
import { PolicyError } from '../../util/errors.js';
import { LineProblems, type LineProblemsError } from '../../util/line-problems.js';
import { nestedRepetition } from './regex-risk.js';
import { endsWithIgnoringCase, requiredSuffix } from './regex-suffix.js';

/** A line postgrey would also have skipped, with where it was. */
export interface WhitelistWarning {
  source: string;
  line: number;
  message: string;
}

interface NamedPattern {
  re: RegExp;
  /** Client entries: what every match ends with (requiredSuffix); a name without it is not tried. */
  suffix?: string;
  /** The entry as written, for the decision log. */
  entry: string;
  /** Position in the files, so the earliest matching entry is reported, as postgrey's loop would. */
  index?: number;
}

/** POLICY_ERR_BAD_WHITELIST with every `/regex/` line that does not compile, over all the files read together. */
export class WhitelistSyntaxError extends PolicyError implements LineProblemsError {
  constructor(readonly problems: readonly string[]) {
    super('POLICY_ERR_BAD_WHITELIST', problems.join('\n'));
  }
}

/** Parsed whitelists; immutable once built. */
export class PostgreyWhitelist {
  /** `/regex/` client entries, in file order. */
  private readonly clientNames: NamedPattern[] = [];
  /**
   * Plain host and domain entries by lower-case name: a client name matches when it or one of its
   * parent domains is here. A map instead of one regex per entry (Debian's file has ~250), which
   * was measurable on every decision.
   */
  private readonly clientDomains = new Map<string, { entry: string; index: number }>();
  private nextIndex = 0;
  private readonly clientNets = new CidrSet();
  private readonly clientNetEntries = new Map<Cidr, string>();
  private readonly recipients: NamedPattern[] = [];
  /** Lines skipped while parsing (postgrey warns and goes on). */
  readonly warnings: WhitelistWarning[] = [];
  /** `/regex/` lines that do not compile, thrown together once every file is read (fromText). */
  private readonly errors = new LineProblems();

  /** An empty whitelist (nothing matches). */
  static empty(): PostgreyWhitelist {
    return new PostgreyWhitelist();
  }

  /**
   * Builds a whitelist from file contents. Throws WhitelistSyntaxError (POLICY_ERR_BAD_WHITELIST)
   * naming the source and line of every `/regex/` that does not compile; other odd lines become warnings.
   */
  static fromText(clients: readonly { source: string; text: string }[], recipients: readonly { source: string; text: string }[]): PostgreyWhitelist {
    const w = new PostgreyWhitelist();
    for (const c of clients) w.addClients(c.text, c.source);
    for (const r of recipients) w.addRecipients(r.text, r.source);
    w.errors.throwIfAny([...clients, ...recipients].map((f) => f.source).join(', '), (problems) => new WhitelistSyntaxError(problems));
    return w;
  }

  /**
   * Reads postgrey whitelist files. As in postgrey, a missing file whose name ends in `.local` is
   * skipped silently; any other unreadable file throws POLICY_ERR_BAD_WHITELIST.
   */
  static async load(clientFiles: readonly string[], recipientFiles: readonly string[]): Promise<PostgreyWhitelist> {
    const read = async (files: readonly string[]): Promise<{ source: string; text: string }[]> => {
      const out: { source: string; text: string }[] = [];
      for (const source of files) {
        try {
          out.push({ source, text: await readTextFile(source) });
        } catch (err) {
          if (source.endsWith('.local') && (err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw new PolicyError('POLICY_ERR_BAD_WHITELIST', `cannot read whitelist ${source}: ${(err as Error).message}`, { cause: err });
        }
      }
      return out;
    };
    return PostgreyWhitelist.fromText(await read(clientFiles), await read(recipientFiles));
  }

  /** Number of client and recipient entries. */
  get size(): { clients: number; recipients: number } {
    return { clients: this.clientNames.length + this.clientDomains.size + this.clientNets.size, recipients: this.recipients.length };
  }

  /**
   * The entry whitelisting this client, or undefined. Names and regexes match `clientName`
   * (Postfix's client_name: the verified reverse name, or "unknown"); addresses and networks match
   * `clientAddress`.
   */
  matchClient(clientName: string, clientAddress: string): string | undefined {
    let best: { entry: string; index: number } | undefined;
    if (this.clientDomains.size > 0) {
      // The name itself, then each parent domain: "a.b.example.com" -> "b.example.com" -> ...
      let name = clientName.toLowerCase();
      for (;;) {
        const hit = this.clientDomains.get(name);
        if (hit && (!best || hit.index < best.index)) best = hit;
        const dot = name.indexOf('.');
        if (dot < 0) break;
        name = name.slice(dot + 1);
      }
    }
    for (const p of this.clientNames) {
      if (best && (p.index ?? 0) > best.index) break;
      if (p.suffix && !endsWithIgnoringCase(clientName, p.suffix)) continue;
      if (p.re.test(clientName)) return p.entry;
    }
    if (best) return best.entry;
    const net = this.clientNets.match(clientAddress);
    return net ? this.clientNetEntries.get(net) : undefined;
  }

  /** The entry whitelisting this recipient, or undefined. */
  matchRecipient(recipient: string): string | undefined {
    for (const p of this.recipients) if (p.re.test(recipient)) return p.entry;
    return undefined;
  }

  private addClients(text: string, source: string): void {
    forEachEntry(text, (entry, line) => {
      const rx = /^\/(\S+)\/$/.exec(entry);
      const index = this.nextIndex++;
      if (rx) {
        const re = this.compileRegex(rx[1] ?? '', source, line);
        if (!re || this.refusedAsRisky(re, entry, source, line)) return;
        this.clientNames.push({ re, suffix: requiredSuffix(re), entry, index });
      } else if (/^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?:\/\d{1,2})?$/.test(entry)) {
        this.addNet(entry, entry, source, line);
      } else if (/^\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(entry)) {
        this.addNet(`${entry}.0/24`, entry, source, line);
      } else if (/^\d{1,3}\.\d{1,3}$/.test(entry)) {
        // postgrey's comment says /16, but its code (NetAddr::IP->new("a.b", 24)) whitelists
        // a.b.0.0/24, and that is what such a line has meant on a postgrey host: kept, not widened.
        this.addNet(`${entry}.0.0/24`, entry, source, line);
      } else if (/^.*:.*:.*(?:\/\d{1,3})?$/.test(entry)) {
        this.addNet(entry, entry, source, line);
      } else if (/^\S+$/.test(entry)) {
        // A host name or domain: matches itself and any name below it, case-insensitively.
        const key = entry.toLowerCase();
        if (!this.clientDomains.has(key)) this.clientDomains.set(key, { entry, index });
      } else {
        this.warnings.push({ source, line, message: `doesn't look like a hostname: "${entry}"` });
      }
    });
  }

  private addNet(cidrText: string, entry: string, source: string, line: number): void {
    let cidr: Cidr;
    try {
      cidr = parseCidr(cidrText);
    } catch (err) {
      // postgrey drops an address NetAddr::IP cannot parse; we say so.
      this.warnings.push({ source, line, message: `not a valid address or network: "${entry}" (${(err as Error).message})` });
      return;
    }
    this.clientNets.add(cidr);
    this.clientNetEntries.set(cidr, entry);
  }

  /**
   * True, with a warning, for a `/regex/` entry that repeats an ambiguous group (regex-risk.ts): a
   * client name or recipient (the sender chooses it) could make it run for ever on this thread.
   */
  private refusedAsRisky(re: RegExp, entry: string, source: string, line: number): boolean {
    const risk = nestedRepetition(re.source);
    if (risk === undefined) return false;
    this.warnings.push({
      source,
      line,
      message: `${entry} repeats a group that can match a name in several ways ("${risk}"): one name can make it run for seconds or for ever, stalling every DNS answer and decision; rewrite that part (e.g. [a-z0-9.-]* for (.*\\.)*, or end each repetition at a dot: (\\w+\\.)*)`,
    });
    return true;
  }

  /** The `/regex/` entry's body compiled, or undefined with its problem noted (thrown with the others by fromText). */
  private compileRegex(body: string, source: string, line: number): RegExp | undefined {
    let pattern: string;
    try {
      pattern = perlToJsPattern(body);
    } catch (err) {
      this.errors.add(`${source} line ${line}: regular expression /${body}/: ${(err as Error).message}`);
      return undefined;
    }
    try {
      // postgrey compiles these with Perl's qr{...}i; perlToJsPattern maps what reads differently.
      return new RegExp(pattern, 'i');
    } catch (err) {
      this.errors.add(`${source} line ${line}: bad regular expression /${body}/: ${(err as Error).message}`);
      return undefined;
    }
  }

  private addRecipients(text: string, source: string): void {
    forEachEntry(text, (entry, line) => {
      const rx = /^\/(\S+)\/$/.exec(entry);
      if (rx) {
        const re = this.compileRegex(rx[1] ?? '', source, line);
        if (re && !this.refusedAsRisky(re, entry, source, line)) this.recipients.push({ re, entry });
        return;
      }
      if (!/^\S+$/.test(entry)) {
        this.warnings.push({ source, line, message: `doesn't look like an address: "${entry}"` });
        return;
      }
      const at = entry.indexOf('@');
      const ext = '(?:\\+[^@]+)?';
      if (at < 0) {
        // "domain": the domain and its subdomains.
        this.recipients.push({ re: new RegExp(`(?:@|\\.)${escapeRegex(entry)}$`, 'i'), entry });
        return;
      }
      const user = entry.slice(0, at);
      const domain = entry.slice(at + 1);
      if (user === '') {
        // "@domain": any user at exactly this domain, as in Postfix access(5). postgrey 1.37 only
        // matched the literal "@domain" here, which no recipient is.
        this.recipients.push({ re: new RegExp(`^[^@]*@${escapeRegex(domain)}$`, 'i'), entry });
      } else if (domain === '') {
        // "user@": this user (also user+extension) at any domain, e.g. "postmaster@".
        this.recipients.push({ re: new RegExp(`^${escapeRegex(user)}${ext}@`, 'i'), entry });
      } else {
        // "user@domain": also user+extension@domain.
        this.recipients.push({ re: new RegExp(`^${escapeRegex(user)}${ext}@${escapeRegex(domain)}$`, 'i'), entry });
      }
    });
  }
}

/** Calls fn for each non-empty line with comments and surrounding blanks removed (postgrey's rules). */
function forEachEntry(text: string, fn: (entry: string, line: number) => void): void {
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const entry = raw.replace(/#.*$/, '').trim();
    if (entry !== '') fn(entry, i + 1);
  });
}

/** POSIX bracket classes ("[[:digit:]]") as JavaScript class contents. */
const POSIX_CLASSES: Readonly<Record<string, string>> = {
  alpha: 'a-zA-Z', digit: '0-9', alnum: 'a-zA-Z0-9', upper: 'A-Z', lower: 'a-z', xdigit: '0-9A-Fa-f',
  space: '\\s', blank: ' \\t', word: '\\w', punct: '!-\\/:-@\\[-`{-~', cntrl: '\\x00-\\x1f\\x7f',
  print: '\\x20-\\x7e', graph: '\\x21-\\x7e',
};

/**
 * Perl escapes that JavaScript (without the u flag) silently reads as the bare letter, so a
 * pattern using one would never match what postgrey matched: refused rather than misread.
 */
const PERL_ONLY_ESCAPES = new Set(['Q', 'E', 'G', 'K', 'R', 'X', 'N', 'C', 'L', 'U', 'l', 'h', 'H', 'V', 'p', 'P', 'g', 'o', 'a', 'e']);

/**
 * A postgrey (Perl) pattern as a JavaScript one with the same meaning on host names and
 * addresses. The two syntaxes agree except where JavaScript reads Perl syntax as something else
 * without an error: the anchors \A, \z and \Z (JavaScript: the letters) become ^ and $; POSIX
 * classes inside brackets become ranges; a "]" first in a class is a literal, as in Perl; \x{HH}
 * becomes \xHH (or \uHHHH) and the quantifier {,n} becomes {0,n}. Perl
 * escapes without a JavaScript equivalent throw an Error saying which one. The inline modifiers
 * (?i), (?m), (?s), (?x) and their (?i:...) forms are dropped (the match is case-insensitive
 * already; entries hold no newline or blank); one that turns a flag off, such as (?-i), throws.
 * Constructs JavaScript rejects (possessive quantifiers, "(?#...)") are left for RegExp to refuse.
 */
export function perlToJsPattern(body: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i] as string;
    if (c === '\\') {
      const next = body[i + 1];
      if (next === undefined) return out + c; // RegExp reports the trailing backslash
      i++;
      const hex = next === 'x' ? /^\{([0-9a-fA-F]{1,6})\}/.exec(body.slice(i + 1)) : null;
      if (hex) {
        // Perl's \x{41}; JavaScript without the u flag would read "x" repeated 41 times.
        const code = parseInt(hex[1] as string, 16);
        if (code > 0xffff) throw new Error(`\\x{${hex[1]}} is beyond what a host name or address can hold; write the pattern without it`);
        out += code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
        i += hex[0].length;
        continue;
      }
      if (!inClass && next === 'A') out += '^';
      // Host names and addresses hold no newline, so Perl's \Z (end, or before a final newline) is $ too.
      else if (!inClass && (next === 'z' || next === 'Z')) out += '$';
      else if (PERL_ONLY_ESCAPES.has(next)) throw new Error(`\\${next} has no equivalent here (mxsentry reads postgrey's Perl patterns as JavaScript ones); write the pattern without it`);
      else out += c + next;
      continue;
    }
    if (inClass) {
      const posix = c === '[' ? /^\[:(\^?)([a-z]+):\]/.exec(body.slice(i)) : null;
      if (posix) {
        const ranges = POSIX_CLASSES[posix[2] as string];
        if (ranges === undefined || posix[1] === '^') throw new Error(`POSIX class ${posix[0]} is not supported; write the characters as a range`);
        out += ranges;
        i += posix[0].length - 1;
        continue;
      }
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '(' && body[i + 1] === '?') {
      const modifier = /^\(\?([a-zA-Z]*)(?:-([a-zA-Z]*))?([:)])/.exec(body.slice(i));
      if (modifier && (modifier[1] !== '' || modifier[2] !== undefined)) {
        if (!/^[imsx]+$/.test(modifier[1] ?? '') || modifier[2] !== undefined) {
          throw new Error(`inline modifier ${modifier[0]} has no equivalent here (mxsentry reads postgrey's Perl patterns as JavaScript ones, always case-insensitive); write the pattern without it`);
        }
        // (?i) alone goes; (?i:...) becomes a plain group. So do m, s and x: an entry holds no
        // newline and no blank, so they change nothing.
        if (modifier[3] === ':') out += '(?:';
        i += modifier[0].length - 1;
        continue;
      }
    }
    // Perl (5.34 and later, Debian 12's) reads {,n} as {0,n}; JavaScript as the literal text.
    const upTo = c === '{' ? /^\{,(\d+)\}/.exec(body.slice(i)) : null;
    if (upTo) {
      out += `{0,${upTo[1] as string}}`;
      i += upTo[0].length - 1;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      if (body[i + 1] === '^') {
        out += '^';
        i++;
      }
      // Perl: a "]" right after "[" or "[^" is a literal; JavaScript would read "[]" as an empty class.
      if (body[i + 1] === ']') {
        out += '\\]';
        i++;
      }
      continue;
    }
    out += c;
  }
  return out;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
