// The decision pipeline: runs the ordered checks (DESIGN.md s3, steps 1-10) on one request, the
// first verdict wins, nothing -> step 11 accept. Called by policy/server.ts (via decide) and by the
// `mxsentry check` CLI (record: false). It never throws and never answers anything but a check's
// verdict or DUNNO: a failing check, a blown budget or a non-RCPT request all fail open.
import type { Clock } from '../util/clock.js';
import { parseAddress } from '../util/cidr.js';
import { PolicyError, describeError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { RateLimitedLog } from '../util/rate-limited-log.js';
import type { Check, CheckContext, CheckResult, Decision, PolicyRequest } from './types.js';
import { clipLogValue } from '../util/log-value.js';

/** Schedules `callback` after `delayMs`; returns a cancel function. Injected in tests. */
export type ScheduleFn = (callback: () => void, delayMs: number) => () => void;

export interface PipelineOptions {
  /** Time budget of one decision in ms; past it the answer is DUNNO. Default 3000. */
  budgetMs?: number;
  /** Timer used to enforce the budget on a check that hangs. Default: setTimeout. */
  schedule?: ScheduleFn;
}

export interface DecideOptions {
  /** false: decide but write nothing (greylist store). Default true. */
  record?: boolean;
}

/** Decisions counted per step and verdict. */
export interface PipelineStepCount {
  step: number;
  stepName: string;
  /** First word of the action, upper case; numeric 4NN/5NN replies count as DEFER/REJECT. */
  verdict: string;
  count: number;
}

export interface PipelineStats {
  decisions: number;
  /** Decisions answered DUNNO because the budget ran out. */
  budgetExceeded: number;
  /** Checks that threw (run or prepare) or returned an unusable action. */
  checkErrors: number;
  byStep: PipelineStepCount[];
}

/** Step numbers of the outcomes the pipeline itself produces. */
export const STEP_NOT_RCPT = 0;
export const STEP_ACCEPT = 11;

const defaultSchedule: ScheduleFn = (callback, delayMs) => {
  const timer = setTimeout(callback, delayMs);
  return () => clearTimeout(timer);
};

/**
 * The verdict class of a Postfix action: "REJECT 5.1.1 ..." -> REJECT, "DEFER_IF_PERMIT ..." ->
 * DEFER_IF_PERMIT, "550 5.1.1 ..." -> REJECT, "450 ..." -> DEFER (access(5) numeric replies).
 */
export function actionVerdict(action: string): string {
  // Every decision is counted by verdict: the usual action (printable ASCII words) is read a
  // character at a time; anything else (other white space, leading blanks) takes the general way.
  let end = 0;
  for (; end < action.length; end++) {
    const c = action.charCodeAt(end);
    if (c === 0x20 && end > 0) break;
    if (c <= 0x20 || c >= 0x7f) return verdictOfWord((action.trim().split(/\s+/, 1)[0] ?? '').toUpperCase());
  }
  return verdictOfWord(action.slice(0, end).toUpperCase());
}

/** REJECT for a 5NN reply code, DEFER for 4NN, else the word (upper case) itself. */
function verdictOfWord(word: string): string {
  if (word.length === 3 && isDigit(word.charCodeAt(1)) && isDigit(word.charCodeAt(2))) {
    const first = word.charCodeAt(0);
    if (first === 0x35) return 'REJECT';
    if (first === 0x34) return 'DEFER';
  }
  return word;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

type Outcome =
  | { kind: 'verdict'; check: Check; result: CheckResult }
  | { kind: 'error'; check: Check; error: unknown }
  | { kind: 'budget' }
  | { kind: 'accept' };

/**
 * Runs checks in the given order. Contract: `decide` always resolves, within about budgetMs,
 * with a Decision whose action is safe to put on the wire.
 */
export class PolicyPipeline {
  private readonly checks: readonly Check[];
  private readonly budgetMs: number;
  private readonly schedule: ScheduleFn;
  /** Decisions by step number, step name and verdict (no key text built per decision). */
  private readonly counts = new Map<number, Map<string, Map<string, PipelineStepCount>>>();
  private decisions = 0;
  private budgetExceeded = 0;
  private checkErrors = 0;
  private readonly malformedLog: RateLimitedLog;

  /** Throws PolicyError POLICY_ERR_PIPELINE when steps are not strictly ascending within 1-10. */
  constructor(
    checks: readonly Check[],
    private readonly clock: Clock,
    private readonly logger: Logger,
    options: PipelineOptions = {},
  ) {
    let last = STEP_NOT_RCPT;
    for (const check of checks) {
      if (!Number.isInteger(check.step) || check.step <= last || check.step >= STEP_ACCEPT) {
        throw new PolicyError('POLICY_ERR_PIPELINE', `check "${check.name}" has step ${check.step}; steps must ascend strictly within 1-10`);
      }
      last = check.step;
    }
    this.checks = [...checks];
    this.budgetMs = options.budgetMs ?? 3000;
    if (!(this.budgetMs > 0)) throw new PolicyError('POLICY_ERR_PIPELINE', `budgetMs must be positive, got ${this.budgetMs}`);
    this.schedule = options.schedule ?? defaultSchedule;
    this.malformedLog = new RateLimitedLog(logger, clock);
  }

  /** Decides one request; never rejects. */
  async decide(request: PolicyRequest, options: DecideOptions = {}): Promise<Decision> {
    const startMs = this.clock.nowMs();
    const state = (request.protocol_state ?? '').toUpperCase();
    // Only RCPT is judged: a verdict at DATA/END-OF-MESSAGE would apply to all recipients, and
    // VRFY/ETRN carry no envelope. Nothing is recorded for them.
    if (state !== 'RCPT') {
      return this.finish(request, startMs, {
        action: 'DUNNO',
        step: STEP_NOT_RCPT,
        stepName: 'not-rcpt',
        reason: `protocol_state ${state === '' ? '(missing)' : state} is not judged`,
      });
    }
    // Without the client's IP address (missing, malformed, or Postfix's "unknown" when an XCLIENT
    // or proxy client withheld it) no check judges the request (none may turn it into a 5xx, not
    // even the HELO checks).
    if (parseAddress(request.client_address ?? '') === null) {
      this.malformedLog.log('warn', { clientAddress: clipLogValue(request.client_address) ?? null, queueId: clipLogValue(request.queue_id) ?? null }, 'policy request whose client_address is not an IP address (Postfix sends "unknown" when an XCLIENT or proxy client withheld it): DUNNO');
      return this.finish(request, startMs, {
        action: 'DUNNO',
        step: STEP_NOT_RCPT,
        stepName: 'malformed',
        reason: `client_address ${request.client_address === undefined ? '(missing)' : JSON.stringify(request.client_address)} is not an IP address`,
      });
    }
    const ctx: CheckContext = {
      request,
      clientAddress: request.client_address ?? '',
      deadlineAtMs: startMs + this.budgetMs,
      nowMs: startMs,
      record: options.record ?? true,
      memo: new Map(),
    };
    const progress: { current: Check | undefined; abandoned: boolean } = { current: undefined, abandoned: false };
    let outcome = this.runChecks(ctx, progress);
    if (outcome instanceof Promise) {
      // A step is waiting (a lookup, a commit): from here on the budget timer bounds the wait.
      let cancel: (() => void) | undefined;
      const budget = new Promise<Outcome>((resolve) => {
        cancel = this.schedule(() => resolve({ kind: 'budget' }), Math.max(0, ctx.deadlineAtMs - this.clock.nowMs()));
      });
      outcome = await Promise.race([outcome, budget]);
      cancel?.();
    }
    progress.abandoned = true;

    switch (outcome.kind) {
      case 'verdict':
        return this.finish(request, startMs, {
          action: outcome.result.action,
          step: outcome.check.step,
          stepName: outcome.check.name,
          reason: outcome.result.reason,
        });
      case 'error':
        this.checkErrors++;
        this.logger.warn({ step: outcome.check.step, stepName: outcome.check.name, err: describeError(outcome.error) }, 'policy check failed; failing open');
        return this.finish(request, startMs, {
          action: 'DUNNO',
          step: outcome.check.step,
          stepName: outcome.check.name,
          reason: `check failed: ${describeError(outcome.error)}`,
        });
      case 'budget': {
        this.budgetExceeded++;
        const check = progress.current;
        this.logger.warn({ step: check?.step, stepName: check?.name, budgetMs: this.budgetMs, client: ctx.clientAddress }, 'policy decision budget exceeded; answering DUNNO');
        return this.finish(request, startMs, {
          action: 'DUNNO',
          step: check?.step ?? STEP_NOT_RCPT,
          stepName: check?.name ?? 'prepare',
          reason: 'budget exceeded',
        });
      }
      case 'accept':
        return this.finish(request, startMs, { action: 'DUNNO', step: STEP_ACCEPT, stepName: 'accept', reason: 'no step decided' });
    }
  }

  /** Counters for metrics (copies). */
  stats(): PipelineStats {
    return {
      decisions: this.decisions,
      budgetExceeded: this.budgetExceeded,
      checkErrors: this.checkErrors,
      byStep: [...this.counts.values()].flatMap((byName) => [...byName.values()].flatMap((byVerdict) => [...byVerdict.values()].map((c) => ({ ...c })))).sort((a, b) => a.step - b.step || a.verdict.localeCompare(b.verdict)),
    };
  }

  /**
   * Runs the steps in order, synchronously while each step answers at once (a repeat client with
   * cached DNS list answers and nothing to write needs no promise at all); from the first step that
   * returns a promise on, the rest run after it settles.
   */
  private runChecks(ctx: CheckContext, progress: { current: Check | undefined; abandoned: boolean }): Outcome | Promise<Outcome> {
    // Steps after one that decides at once never run: their slow work is not started.
    let prepared = this.checks.length;
    for (let i = 0; i < prepared; i++) if ((this.checks[i] as Check).decidesAtOnce?.(ctx) === true) prepared = i;
    for (let i = 0; i < prepared; i++) {
      const check = this.checks[i] as Check;
      if (!check.prepare) continue;
      try {
        check.prepare(ctx);
      } catch (err) {
        // The step's run() still gets its chance; it decides (or fails) on its own.
        this.checkErrors++;
        this.logger.warn({ step: check.step, stepName: check.name, err: describeError(err) }, 'policy check prepare() threw');
      }
    }
    return this.runFrom(0, ctx, progress);
  }

  private runFrom(first: number, ctx: CheckContext, progress: { current: Check | undefined; abandoned: boolean }): Outcome | Promise<Outcome> {
    for (let i = first; i < this.checks.length; i++) {
      const check = this.checks[i] as Check;
      // No step starts once the budget is spent (checked on the injected clock, so a slow step that
      // did return is caught even when the budget timer has not fired yet).
      if (progress.abandoned || this.clock.nowMs() >= ctx.deadlineAtMs) return { kind: 'budget' };
      progress.current = check;
      let result: CheckResult | null | Promise<CheckResult | null>;
      try {
        result = check.run(ctx);
      } catch (error) {
        return { kind: 'error', check, error };
      }
      if (result instanceof Promise) {
        return result.then(
          (settled) => stepOutcome(check, settled) ?? this.runFrom(i + 1, ctx, progress),
          (error: unknown): Outcome => ({ kind: 'error', check, error }),
        );
      }
      const outcome = stepOutcome(check, result);
      if (outcome) return outcome;
    }
    return { kind: 'accept' };
  }

  private finish(request: PolicyRequest, startMs: number, d: Omit<Decision, 'elapsedMs'>): Decision {
    const decision: Decision = { action: d.action, step: d.step, stepName: d.stepName, reason: d.reason, elapsedMs: Math.max(0, this.clock.nowMs() - startMs) };
    this.decisions++;
    const verdict = actionVerdict(decision.action);
    let byName = this.counts.get(decision.step);
    if (!byName) this.counts.set(decision.step, (byName = new Map()));
    let byVerdict = byName.get(decision.stepName);
    if (!byVerdict) byName.set(decision.stepName, (byVerdict = new Map()));
    const entry = byVerdict.get(verdict);
    if (entry) entry.count++;
    else byVerdict.set(verdict, { step: decision.step, stepName: decision.stepName, verdict, count: 1 });
    this.logger.info(
      {
        client: clipLogValue(request.client_address ?? ''),
        // Postfix's verified client name ("unknown" without a matching PTR), as postgrey logs it.
        clientName: clipLogValue(request.client_name) || undefined,
        helo: clipLogValue(request.helo_name ?? ''),
        sender: clipLogValue(request.sender ?? ''),
        recipient: clipLogValue(request.recipient ?? ''),
        queueId: clipLogValue(request.queue_id) || undefined,
        state: clipLogValue(request.protocol_state ?? ''),
        step: decision.step,
        stepName: decision.stepName,
        action: decision.action,
        reason: decision.reason,
        elapsedMs: decision.elapsedMs,
      },
      'policy decision',
    );
    return decision;
  }
}

/** A step's verdict, an error for an unusable action, or undefined when the step passes (null). */
function stepOutcome(check: Check, result: CheckResult | null | undefined): Outcome | undefined {
  if (result === null || result === undefined) return undefined;
  if (typeof result.action !== 'string' || result.action.trim() === '' || /[\r\n\0]/.test(result.action)) {
    return { kind: 'error', check, error: new PolicyError('POLICY_ERR_BAD_ACTION', `unusable action ${JSON.stringify(String(result.action).slice(0, 80))}`) };
  }
  return { kind: 'verdict', check, result };
}
