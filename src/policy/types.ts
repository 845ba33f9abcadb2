// Shared types of the policy service: the request as Postfix sends it, the Check contract each
// pipeline step implements, and the decision the server turns into an `action=` line.

/** Attributes of one Postfix policy request (name -> value; a repeated name keeps the last value). */
export type PolicyRequest = Readonly<Record<string, string>>;

/** What one step decided. `action` is the exact Postfix action text without "action=". */
export interface CheckResult {
  action: string;
  /** Human-readable reason for the decision log line. */
  reason: string;
}

/** Everything a step may look at; built once per request by the pipeline. */
export interface CheckContext {
  request: PolicyRequest;
  /** client_address as sent by Postfix: an IP address (the pipeline answers DUNNO before any step when it is not). */
  clientAddress: string;
  /** Absolute time (Clock ms) by which the whole decision must be done. */
  deadlineAtMs: number;
  nowMs: number;
  /** false for `mxsentry check`: decide, but write nothing to the greylist store. */
  record: boolean;
  /** Per-request scratch space so steps can share one piece of work (e.g. parallel DNS list lookups). */
  memo: Map<string, unknown>;
}

/**
 * One pipeline step. Contract: `run` returns null to let the next step decide, or a CheckResult
 * that ends the pipeline. It must not throw for bad input; failures of its dependencies (DNS,
 * store) are handled inside with the documented fail-open outcome and a log line.
 */
export interface Check {
  readonly step: number;
  readonly name: string;
  /**
   * Called before any step runs, so a step can start slow work early (optional); not called for the
   * steps after one that decides the request at once (decidesAtOnce).
   */
  prepare?(ctx: CheckContext): void;
  /**
   * True when run() will decide this request without waiting for anything (a known network, an
   * authenticated client, a malformed HELO or sender): the later steps' prepare() is then skipped,
   * so a DNS list operator never sees the address of a client the lists cannot matter for.
   */
  decidesAtOnce?(ctx: CheckContext): boolean;
  run(ctx: CheckContext): Promise<CheckResult | null> | CheckResult | null;
}

/** The outcome of the pipeline for one request. */
export interface Decision {
  action: string;
  step: number;
  stepName: string;
  reason: string;
  elapsedMs: number;
}
