// Pipeline step 6: SASL-authenticated clients (Postfix sends a non-empty sasl_username) skip every
// later step. Built by main.ts, run by policy/pipeline.ts. Pure; it trusts Postfix's attribute, which
// Postfix sets only after a successful AUTH.
import type { Check, CheckContext, CheckResult } from '../types.js';
import type { TrustedAction } from './known-networks-check.js';

export interface SaslCheckOptions {
  /** DUNNO (default: later Postfix restrictions still run) or OK. */
  action?: TrustedAction;
}

/** Step 6. */
export class SaslCheck implements Check {
  readonly step = 6;
  readonly name = 'sasl-authenticated';

  decidesAtOnce(ctx: CheckContext): boolean {
    return this.run(ctx) !== null;
  }
  private readonly action: TrustedAction;

  constructor(options: SaslCheckOptions = {}) {
    this.action = options.action ?? 'DUNNO';
  }

  run(ctx: CheckContext): CheckResult | null {
    const user = ctx.request.sasl_username ?? '';
    if (user === '') return null;
    return { action: this.action, reason: `authenticated as ${user.replace(/[\x00-\x1f\x7f]/g, '?')}` };
  }
}
