// Pipeline step 4: reject recipients that are in none of the configured recipient tables, in the
// domains those tables list (a recipient in another domain is not judged). Built by
// main.ts (tables loaded from files, swapped on SIGHUP), run by policy/pipeline.ts. Skipped when no
// table is configured. No I/O at decision time.
import type { RecipientTable, RecipientTableMatch } from '../tables/recipient-table.js';
import type { Check, CheckContext, CheckResult } from '../types.js';

export interface RecipientCheckOptions {
  /**
   * Characters that start an address extension, like Postfix's recipient_delimiter: "user+ext@d"
   * is looked up as itself, then as "user@d". Several characters allowed ("+-"); "" disables.
   * Default "+".
   */
  delimiter?: string;
}

/**
 * Looks up a recipient like Postfix: the full address, the address without its extension, then
 * "@domain". Returns the matching entry or undefined.
 */
export function lookupRecipient(tables: readonly RecipientTable[], recipient: string, delimiter = '+'): RecipientTableMatch | undefined {
  const address = recipient.toLowerCase();
  const at = address.lastIndexOf('@');
  const local = at >= 0 ? address.slice(0, at) : address;
  const domain = at >= 0 ? address.slice(at + 1) : '';
  const candidates = [address];
  const stripped = stripExtension(local, delimiter);
  if (stripped !== local) candidates.push(at >= 0 ? `${stripped}@${domain}` : stripped);
  if (domain !== '') candidates.push(`@${domain}`);
  for (const key of candidates) {
    for (const table of tables) {
      const hit = table.get(key);
      if (hit) return hit;
    }
  }
  return undefined;
}

/**
 * "user+ext" -> "user": cut at the first delimiter character, as Postfix's split_addr(): never when
 * that leaves an empty local part, never postmaster, mailer-daemon or double-bounce, and, when "-" is
 * a delimiter, never owner-foo or foo-request (owner_request_special, on by default).
 */
export function stripExtension(local: string, delimiter: string): string {
  if (delimiter === '') return local;
  const lower = local.toLowerCase();
  if (lower === 'postmaster' || lower === 'mailer-daemon' || lower === 'double-bounce') return local;
  if (delimiter.includes('-') && (lower.startsWith('owner-') || (lower.length > 8 && lower.endsWith('-request')))) return local;
  for (let i = 0; i < local.length; i++) {
    if (delimiter.includes(local.charAt(i))) return i === 0 ? local : local.slice(0, i);
  }
  return local;
}

/**
 * Step 4. The reply is "550 5.1.1 User unknown": Postfix turns it into "550 5.1.1 <rcpt>:
 * Recipient address rejected: User unknown", the reply of its own local_recipient_maps check. A
 * policy "REJECT" would get access_map_reject_code (554), and a "<rcpt>: Recipient address
 * rejected:" prefix in our text would appear twice (smtpd_check.c check_table_result adds it).
 */
export class RecipientCheck implements Check {
  readonly step = 4;
  readonly name = 'recipient-tables';

  decidesAtOnce(ctx: CheckContext): boolean {
    return this.run(ctx) !== null;
  }
  private tables: readonly RecipientTable[];
  private readonly delimiter: string;

  constructor(tables: readonly RecipientTable[] = [], options: RecipientCheckOptions = {}) {
    this.tables = [...tables];
    this.delimiter = options.delimiter ?? '+';
  }

  /** Replaces the tables (SIGHUP reload); an empty list turns the step off. */
  setTables(tables: readonly RecipientTable[]): void {
    this.tables = [...tables];
  }

  run(ctx: CheckContext): CheckResult | null {
    if (this.tables.length === 0) return null;
    const recipient = ctx.request.recipient ?? '';
    if (recipient === '') return null;
    const at = recipient.lastIndexOf('@');
    // RFC 5321 s4.5.1: "postmaster" must always be accepted; Postfix accepts the bare form itself.
    const local = recipient.slice(0, Math.max(0, at)) || recipient;
    if (local.toLowerCase() === 'postmaster') return null;
    // Only the domains the tables list are judged, as Postfix's reject_unlisted_recipient judges only
    // its own domains: a backup MX relaying for another domain leaves that domain's users to it.
    if (at >= 0 && !this.tables.some((t) => t.coversDomain(recipient.slice(at + 1)))) return null;
    if (lookupRecipient(this.tables, recipient, this.delimiter)) return null;
    return { action: '550 5.1.1 User unknown', reason: `recipient ${recipient.replace(/[\x00-\x1f\x7f]/g, '?')} not in recipient tables` };
  }
}
