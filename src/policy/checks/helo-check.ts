// Pipeline steps 1 and 2: a HELO/EHLO name must be present, and must be a valid hostname or
// address literal (optionally one that resolves). Built by main.ts; run by policy/pipeline.ts.
// Pure syntax apart from the optional lookup, which goes through the injected ResolveFn only and
// fails open (no verdict) on SERVFAIL, timeouts and errors. Reply texts are Postfix's own.
import { isIPv6 } from 'node:net';
import type { ResolveFn, ResolveResult } from '../../dns/resolver-api.js';
import { PolicyError, describeError } from '../../util/errors.js';
import type { Logger } from '../../util/logger.js';
import type { Check, CheckContext, CheckResult } from '../types.js';

/** Syntax options shared with the sender check. */
export interface HostnameSyntaxOptions {
  /**
   * Accept "_" in labels. Postfix's valid_hostname() does (Windows hosts send such names), so the
   * HELO check does; RFC 5321 Domain does not, so the sender check does not.
   */
  allowUnderscore?: boolean;
  /** Accept non-ASCII U-labels (RFC 6531 s3.3, SMTPUTF8 addresses). */
  allowUtf8?: boolean;
}

/**
 * True for a syntactically valid fully-qualified hostname (RFC 1123 s2.1, RFC 5321 s4.1.2): LDH
 * labels of 1-63 characters not starting or ending with "-", at least two labels, not all digits
 * (so a bare IPv4 address is not a hostname; like Postfix's valid_hostname(), which accepts
 * "mail.123" and refuses only a name with no letter or hyphen at all), at most 253 characters.
 * One trailing dot is accepted.
 */
export function isValidHostname(name: string, options: HostnameSyntaxOptions = {}): boolean {
  // Every decision checks the HELO name and the sender's domain: an ASCII name is read one
  // character code at a time, without splitting it; a name with other characters takes the
  // general way (hostnameByLabels), which reads code points.
  let n = name.length;
  if (n > 0 && name.charCodeAt(n - 1) === 0x2e) n--;
  if (n === 0 || n > 253) return false;
  let labelStart = 0;
  let labels = 0;
  let allDigits = true;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? name.charCodeAt(i) : 0x2e;
    if (c === 0x2e) {
      const len = i - labelStart;
      if (len === 0 || len > 63 || name.charCodeAt(labelStart) === 0x2d || name.charCodeAt(i - 1) === 0x2d) return false;
      labels++;
      if (i < n) labelStart = i + 1;
    } else if (c >= 0x30 && c <= 0x39) {
      // a digit keeps a label all-numeric
    } else if ((c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x2d || (c === 0x5f && options.allowUnderscore === true)) {
      allDigits = false;
    } else if (c > 0x7f) {
      return hostnameByLabels(name, options);
    } else {
      return false;
    }
  }
  return labels >= 2 && !allDigits;
}

/** isValidHostname by splitting into labels and reading code points: the general way. */
export function hostnameByLabels(name: string, options: HostnameSyntaxOptions = {}): boolean {
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  if (n.length === 0 || n.length > 253) return false;
  const labels = n.split('.');
  if (labels.length < 2) return false;
  for (const label of labels) if (!isValidLabel(label, options)) return false;
  return !labels.every((l) => /^\d+$/.test(l));
}

/** Why `name` is not a valid HELO name, or undefined when it is one (hostname or address literal). */
export function heloNameProblem(name: string): 'invalid' | 'not-fqdn' | undefined {
  if (name.startsWith('[')) return isValidAddressLiteral(name) ? undefined : 'invalid';
  if (isValidHostname(name, { allowUnderscore: true })) return undefined;
  // A bare address ("192.0.2.1", "2001:db8::1") is no hostname, yet Postfix's reject_invalid_hostname
  // lets it through ("XXX back compat": valid_hostaddr) and reject_non_fqdn_hostname rejects it as
  // not fully qualified: the same two verdicts here.
  if (isBareAddress(name)) return 'not-fqdn';
  const n = name.endsWith('.') ? name.slice(0, -1) : name;
  // A single well-formed label ("localhost", "mailserver") is a syntactically fine name that is
  // just not fully qualified; Postfix reports it separately (reject_non_fqdn_helo_hostname).
  if (n.length > 0 && n.length <= 63 && !n.includes('.') && isValidLabel(n, { allowUnderscore: true }) && !/^\d+$/.test(n)) return 'not-fqdn';
  return 'invalid';
}

/** A dotted-quad IPv4 or an IPv6 address without the brackets of an address literal. */
export function isBareAddress(name: string): boolean {
  return name.includes(':') ? isPlainIPv6(name) : isDottedQuad(name);
}

/** RFC 5321 IPv4-address-literal content: four Snum (1*3DIGIT, 0 through 255; leading zeros allowed). */
function isDottedQuad(text: string): boolean {
  const parts = text.split('.');
  return parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255);
}

/** An IPv6 address without a zone index ("%eth0"). */
function isPlainIPv6(text: string): boolean {
  return !text.includes('%') && isIPv6(text);
}

/**
 * True for an RFC 5321 s4.1.3 address literal with a valid address: "[192.0.2.1]" or
 * "[IPv6:2001:db8::1]" (the tag is case-insensitive). General address literals with other tags
 * are refused: none is registered.
 */
export function isValidAddressLiteral(text: string): boolean {
  if (text.length < 3 || !text.startsWith('[') || !text.endsWith(']')) return false;
  const inner = text.slice(1, -1);
  return /^ipv6:/i.test(inner) ? isPlainIPv6(inner.slice(5)) : isDottedQuad(inner);
}

function isValidLabel(label: string, options: HostnameSyntaxOptions): boolean {
  if (label.length === 0 || label.length > 63) return false;
  if (label.startsWith('-') || label.endsWith('-')) return false;
  for (const ch of label) {
    const c = ch.codePointAt(0) ?? 0;
    const ok =
      (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2d ||
      (c === 0x5f && options.allowUnderscore === true) ||
      (c > 0x7f && options.allowUtf8 === true && !isUnicodeSpaceOrControl(ch));
    if (!ok) return false;
  }
  return true;
}

function isUnicodeSpaceOrControl(ch: string): boolean {
  return /[\p{Cc}\p{Cf}\p{Z}]/u.test(ch);
}

/**
 * Step 1: reject when the client sent no HELO/EHLO (Postfix passes an empty helo_name). Postfix
 * prefixes any policy reject text with "<recipient>: Recipient address rejected: "
 * (smtpd_check.c check_table_result), so the client sees both the recipient and this reason.
 */
export class HeloRequiredCheck implements Check {
  readonly step = 1;
  readonly name = 'helo-required';

  decidesAtOnce(ctx: CheckContext): boolean {
    return this.run(ctx) !== null;
  }

  run(ctx: CheckContext): CheckResult | null {
    if ((ctx.request.helo_name ?? '') !== '') return null;
    // Postfix's own reply (smtpd_helo_required): 503 5.5.1, not access_map_reject_code's 554.
    return { action: '503 5.5.1 Error: send HELO/EHLO first', reason: 'no HELO/EHLO' };
  }
}

export interface HeloHostnameOptions {
  /** Also require the name to exist in DNS (A/AAAA lookup); NXDOMAIN rejects. Default false. */
  mustResolve?: boolean;
  /**
   * Reject a single-label name ("localhost", "EXCH01") as Postfix's reject_non_fqdn_helo_hostname
   * does. Default true; false leaves only malformed names rejected (reject_invalid_helo_hostname).
   */
  requireFqdn?: boolean;
  /** Required when mustResolve is set. */
  resolve?: ResolveFn;
  /** Logs lookup failures (fail open). */
  logger?: Logger;
  /**
   * Most time the lookup may take (default 1500 ms, as the DNS lists' budget). A HELO domain whose
   * servers do not answer must not spend the whole decision budget: that would end the decision
   * with DUNNO before the DNS lists and greylisting ran. Past it the step gives no verdict.
   */
  lookupBudgetMs?: number;
}

const DEFAULT_HELO_LOOKUP_BUDGET_MS = 1500;

type LookupOutcome = 'found' | 'nxdomain' | 'nodata' | 'failed';

const MEMO_KEY = 'helo-check:lookup';

/**
 * Step 2: the HELO name must be a valid hostname or address literal; with mustResolve, a hostname
 * that does not exist (NXDOMAIN) is rejected too. NODATA (the name exists without an address) and
 * lookup failures give no verdict: only a definite "no such name" is worth a permanent reject.
 */
export class HeloHostnameCheck implements Check {
  readonly step = 2;
  readonly name = 'helo-hostname';
  private readonly mustResolve: boolean;
  private readonly requireFqdn: boolean;
  private readonly resolve: ResolveFn | undefined;
  private readonly logger: Logger | undefined;
  private readonly lookupBudgetMs: number;

  /** Throws PolicyError POLICY_ERR_CONFIG when mustResolve is set without a resolve function. */
  constructor(options: HeloHostnameOptions = {}) {
    this.mustResolve = options.mustResolve ?? false;
    this.requireFqdn = options.requireFqdn ?? true;
    this.resolve = options.resolve;
    this.logger = options.logger;
    this.lookupBudgetMs = options.lookupBudgetMs ?? DEFAULT_HELO_LOOKUP_BUDGET_MS;
    if (!(this.lookupBudgetMs > 0)) throw new PolicyError('POLICY_ERR_CONFIG', `HELO lookup budget must be positive, got ${this.lookupBudgetMs}`);
    if (this.mustResolve && !this.resolve) {
      throw new PolicyError('POLICY_ERR_CONFIG', 'heloMustResolve needs a resolver');
    }
  }

  /** A name malformed (or single-label when FQDN is required) is rejected at once, without a lookup. */
  decidesAtOnce(ctx: CheckContext): boolean {
    const helo = ctx.request.helo_name ?? '';
    return helo !== '' && this.verdictProblem(helo) !== undefined;
  }

  /** Starts the DNS lookup early so it overlaps with other steps' work. */
  prepare(ctx: CheckContext): void {
    const helo = ctx.request.helo_name ?? '';
    if (!this.mustResolve || helo === '' || this.verdictProblem(helo) !== undefined || helo.startsWith('[') || isBareAddress(helo)) return;
    ctx.memo.set(MEMO_KEY, this.lookup(helo, ctx));
  }

  /** heloNameProblem, less 'not-fqdn' when single-label names are accepted. */
  private verdictProblem(helo: string): 'invalid' | 'not-fqdn' | undefined {
    const problem = heloNameProblem(helo);
    return problem === 'not-fqdn' && !this.requireFqdn ? undefined : problem;
  }

  async run(ctx: CheckContext): Promise<CheckResult | null> {
    const helo = ctx.request.helo_name ?? '';
    if (helo === '') return null; // step 1's business
    const problem = this.verdictProblem(helo);
    if (problem === 'not-fqdn') {
      // The codes of Postfix's reject_non_fqdn_helo_hostname (non_fqdn_reject_code 504) and
      // reject_invalid_helo_hostname (invalid_hostname_reject_code 501), not REJECT's 554.
      return { action: `504 5.5.2 <${helo}>: Helo command rejected: need fully-qualified hostname`, reason: `HELO ${helo} is not fully qualified` };
    }
    if (problem === 'invalid') {
      return { action: `501 5.5.2 <${printable(helo)}>: Helo command rejected: Invalid name`, reason: `HELO ${printable(helo)} is not a valid hostname or address literal` };
    }
    // An address (literal or, accepted by helo-require-fqdn: no, bare) names no host to look up.
    if (!this.mustResolve || helo.startsWith('[') || isBareAddress(helo)) return null;
    const pending = ctx.memo.get(MEMO_KEY) as Promise<LookupOutcome> | undefined;
    const outcome = await (pending ?? this.lookup(helo, ctx));
    if (outcome === 'nxdomain') {
      return { action: `REJECT 5.7.1 <${helo}>: Helo command rejected: Host not found`, reason: `HELO ${helo} does not exist (NXDOMAIN)` };
    }
    return null;
  }

  private async lookup(name: string, ctx: CheckContext): Promise<LookupOutcome> {
    const resolve = this.resolve as ResolveFn;
    const deadlineMs = Math.max(1, Math.min(this.lookupBudgetMs, ctx.deadlineAtMs - ctx.nowMs));
    // Wrapped so a resolver that throws synchronously still settles (the prepare() promise may
    // never be awaited when an earlier step decides, and must never reject unobserved).
    const ask = (type: string): Promise<ResolveResult> => Promise.resolve().then(() => resolve(name, type, { deadlineMs }));
    const settled = await Promise.allSettled([ask('A'), ask('AAAA')]);
    const answers = settled.filter((s): s is PromiseFulfilledResult<ResolveResult> => s.status === 'fulfilled').map((s) => s.value);
    if (answers.some((a) => a.rcode === 0 && a.records.length > 0)) return 'found';
    // RFC 8020: NXDOMAIN means no name at all, whatever the type asked.
    if (answers.some((a) => a.rcode === 3)) return 'nxdomain';
    if (answers.length === 2 && answers.every((a) => a.rcode === 0)) return 'nodata';
    const why = settled.map((s) => (s.status === 'rejected' ? describeError(s.reason) : `rcode ${s.value.rcode}${s.value.failure ? ` (${s.value.failure})` : ''}`));
    this.logger?.warn({ helo: name, lookups: why }, 'HELO name lookup failed; no verdict (fail open)');
    return 'failed';
  }
}

/** Steps 1 and 2 in pipeline order. */
export function createHeloChecks(options: HeloHostnameOptions = {}): [HeloRequiredCheck, HeloHostnameCheck] {
  return [new HeloRequiredCheck(), new HeloHostnameCheck(options)];
}

/** Keeps a client-supplied name printable inside a reply and a log line. */
function printable(text: string): string {
  const clean = text.replace(/[^\x21-\x7e]/g, '?');
  return clean.length > 100 ? `${clean.slice(0, 100)}...` : clean;
}
