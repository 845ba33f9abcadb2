// Pipeline step 5: clients in the known networks (backup MXs, trusted hosts) skip every later step.
// Built by main.ts from CIDR files (tables/cidr-table.ts, swapped on SIGHUP), run by
// policy/pipeline.ts. Table semantics are Postfix's: the first matching line decides, and only a
// permit-like result (OK, RELAY, PERMIT, all-numeric) makes a known network.
import type { CidrTable } from '../tables/cidr-table.js';
import type { Check, CheckContext, CheckResult } from '../types.js';

/** What a known network is answered: DUNNO (default: later Postfix restrictions still run) or OK. */
export type TrustedAction = 'DUNNO' | 'OK';

export interface KnownNetworksOptions {
  action?: TrustedAction;
}

/**
 * True for table results that mean "permit" in a Postfix access table. DUNNO is deliberately not
 * one: in a `cidr:` table it is the exception idiom ("192.0.2.7 DUNNO" before "192.0.2.0/24 OK"
 * stops the search without trusting 192.0.2.7), and admins reuse those files here.
 */
export function isPermitAction(action: string): boolean {
  const text = action.trim();
  const word = (text.split(/\s+/, 1)[0] ?? '').toUpperCase();
  // smtpd_check.c check_table_result: an all-numeric result (the whole value) means OK.
  return word === 'OK' || word === 'RELAY' || word === 'PERMIT' || /^\d+$/.test(text);
}

/** Step 5. */
export class KnownNetworksCheck implements Check {
  readonly step = 5;
  readonly name = 'known-networks';

  decidesAtOnce(ctx: CheckContext): boolean {
    return this.run(ctx) !== null;
  }
  private table: CidrTable | undefined;
  private readonly action: TrustedAction;

  constructor(table?: CidrTable, options: KnownNetworksOptions = {}) {
    this.table = table;
    this.action = options.action ?? 'DUNNO';
  }

  /** Replaces the table (SIGHUP reload); undefined turns the step off. */
  setTable(table: CidrTable | undefined): void {
    this.table = table;
  }

  run(ctx: CheckContext): CheckResult | null {
    if (!this.table || this.table.size === 0 || ctx.clientAddress === '') return null;
    const hit = this.table.lookup(ctx.clientAddress);
    if (!hit || !isPermitAction(hit.action)) return null;
    return { action: this.action, reason: `known network ${hit.cidr} (${hit.source}:${hit.line})` };
  }
}
