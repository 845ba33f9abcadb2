// Pipeline step 3: the envelope sender must be the null sender or an RFC 5321 s4.1.2 Mailbox
// (Local-part "@" Domain with at least two labels, or an address literal). Built by main.ts, run by
// policy/pipeline.ts. Pure syntax: no DNS, no state; it must not judge what Postfix already
// normalised (see isValidMailbox on the internal address form).
import type { Check, CheckContext, CheckResult } from '../types.js';
import { isValidAddressLiteral, isValidHostname } from './helo-check.js';

/** RFC 5321 s4.5.3.1.3: a path is at most 256 octets, so an address at most 254. */
const MAX_ADDRESS_OCTETS = 254;

// atext (RFC 5322 s3.2.3) plus RFC 6531 UTF8-non-ascii.
const ATOM = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10ffff}]+$/u;

/** True for an RFC 5321 Dot-string: Atom *("." Atom). */
export function isDotString(local: string): boolean {
  return local.length > 0 && local.split('.').every((atom) => ATOM.test(atom));
}

/** True for an RFC 5321 Quoted-string: DQUOTE *QcontentSMTP DQUOTE (qtextSMTP / quoted-pairSMTP). */
export function isQuotedString(local: string): boolean {
  if (local.length < 2 || !local.startsWith('"') || !local.endsWith('"')) return false;
  const body = local.slice(1, -1);
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    if (c === 0x5c) {
      // quoted-pairSMTP = %d92 %d32-126
      const next = body.charCodeAt(i + 1);
      if (!(next >= 32 && next <= 126)) return false;
      i++;
    } else if (c === 0x22 || !isTextChar(c)) {
      return false;
    }
  }
  return true;
}

/**
 * Postfix hands the policy service the address in its internal (unquoted) form (smtpd.c
 * extract_addr -> tok822_internalize): MAIL FROM:<"john doe"@example.com> arrives as
 * `sender=john doe@example.com`. So a local part is valid when it is a Dot-string, a
 * Quoted-string, or anything a Quoted-string could carry (printable, RFC 6531 UTF-8 included).
 *
 * True when `address` is a Mailbox in Postfix's internal or external form: a valid local part, "@",
 * and a fully-qualified domain (LDH labels, at least two, no all-numeric TLD, U-labels allowed for
 * SMTPUTF8) or an address literal. The split is at the last "@" because an internal-form local
 * part may itself contain one.
 */
export function isValidMailbox(address: string): boolean {
  return mailboxProblem(address) === undefined;
}

/**
 * What makes `address` no Mailbox (see isValidMailbox), or undefined: 'not-fqdn' when it has no
 * domain or its domain is not fully qualified (Postfix's reject_non_fqdn_sender), else 'syntax'
 * (too long, a bad local part, a bad address literal).
 */
export function mailboxProblem(address: string): 'not-fqdn' | 'syntax' | undefined {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return 'not-fqdn';
  const domain = address.slice(at + 1);
  const literal = domain.startsWith('[');
  if (!literal && !isFqdnDomain(domain)) return 'not-fqdn';
  if (Buffer.byteLength(address, 'utf8') > MAX_ADDRESS_OCTETS) return 'syntax';
  const local = address.slice(0, at);
  if (!(isDotString(local) || isQuotedString(local) || isInternalLocalPart(local))) return 'syntax';
  return literal && !isValidAddressLiteral(domain) ? 'syntax' : undefined;
}

/**
 * The domain test of Postfix's reject_non_fqdn_sender: valid_hostname() (underscores accepted)
 * with a trailing dot stripped, and a dot inside; U-labels allowed for SMTPUTF8.
 */
function isFqdnDomain(domain: string): boolean {
  return isValidHostname(domain, { allowUtf8: true, allowUnderscore: true });
}

/** The unquoted content of a Quoted-string: printable ASCII and space, or UTF-8 beyond ASCII. */
function isInternalLocalPart(local: string): boolean {
  if (local.length === 0) return false;
  for (let i = 0; i < local.length; i++) if (!isTextChar(local.charCodeAt(i))) return false;
  return true;
}

function isTextChar(c: number): boolean {
  // %d32-126, or a UTF-16 unit of a non-ASCII character other than C1 controls.
  return (c >= 32 && c <= 126) || c >= 0xa0;
}

/**
 * Step 3: the null sender (empty `sender=`) passes; any other sender that is not a valid Mailbox is
 * rejected as Postfix's reject_non_fqdn_sender rejects it: 504 5.5.2 "need fully-qualified
 * address" (a local part Postfix let through but that is no mailbox: 501 5.5.2). Not REJECT 5.1.7:
 * REJECT takes access_map_reject_code (554), and smtpd_dsn_fix turns 5.1.7 into the recipient's
 * 5.1.3 in smtpd_recipient_restrictions, blaming the recipient address in the bounce.
 */
export class SenderCheck implements Check {
  readonly step = 3;
  readonly name = 'sender-syntax';

  decidesAtOnce(ctx: CheckContext): boolean {
    return this.run(ctx) !== null;
  }

  run(ctx: CheckContext): CheckResult | null {
    const sender = ctx.request.sender ?? '';
    const problem = sender === '' ? undefined : mailboxProblem(sender);
    if (problem === undefined) return null;
    const shown = printableAddress(sender);
    if (problem === 'not-fqdn') {
      return { action: `504 5.5.2 <${shown}>: Sender address rejected: need fully-qualified address`, reason: `sender ${shown} is not a fully-qualified address` };
    }
    return { action: `501 5.5.2 <${shown}>: Sender address rejected: bad address syntax`, reason: `sender ${shown} is not a valid address` };
  }
}

/** Keeps client-supplied text printable and bounded inside a reply line. */
function printableAddress(text: string): string {
  const clean = text.replace(/[\x00-\x1f\x7f]/g, '?');
  return clean.length > 254 ? `${clean.slice(0, 254)}...` : clean;
}
