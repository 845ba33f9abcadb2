// Tests for the decision pipeline with fake checks, ManualClock and manual timers: order, first
// verdict wins, budget, fail open on throwing checks, non-RCPT states, the log line and stats.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Writable } from 'node:stream';
import { PolicyPipeline, actionVerdict, type ScheduleFn } from '../../src/policy/pipeline.js';
import type { Check, CheckContext, CheckResult } from '../../src/policy/types.js';
import { ManualClock } from '../../src/util/clock.js';
import { PolicyError } from '../../src/util/errors.js';
import { createRootLogger, createSilentLogger } from '../../src/util/logger.js';
import { postfixRequest } from './fixtures.js';

const s = suite('policy/pipeline');

/** A check with a scripted result that records the order it ran in. */
function fake(step: number, name: string, result: CheckResult | null | (() => unknown), trace: string[] = []): Check {
  return {
    step,
    name,
    run: (ctx: CheckContext) => {
      trace.push(name);
      if (typeof result === 'function') return result() as CheckResult | null;
      void ctx;
      return result;
    },
  };
}

/** Timers that fire only when the test says so. */
class ManualTimers {
  pending: Array<{ cb: () => void; delayMs: number; cancelled: boolean }> = [];
  schedule: ScheduleFn = (cb, delayMs) => {
    const t = { cb, delayMs, cancelled: false };
    this.pending.push(t);
    return () => {
      t.cancelled = true;
    };
  };
  fireAll(): void {
    for (const t of this.pending) if (!t.cancelled) t.cb();
  }
  live(): number {
    return this.pending.filter((t) => !t.cancelled).length;
  }
}

function capturingLogger(): { logger: ReturnType<typeof createRootLogger>; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: createRootLogger('info', dest), lines };
}

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

s('runs checks in order; the first verdict wins and later checks do not run', async () => {
  const trace: string[] = [];
  const timers = new ManualTimers();
  const p = new PolicyPipeline(
    [fake(1, 'a', null, trace), fake(3, 'b', { action: 'REJECT no', reason: 'b says no' }, trace), fake(5, 'c', { action: 'OK', reason: 'never' }, trace)],
    new ManualClock(),
    createSilentLogger(),
    { schedule: timers.schedule },
  );
  const d = await p.decide(postfixRequest());
  assert.equal(trace, ['a', 'b']);
  assert.is(d.action, 'REJECT no');
  assert.is(d.step, 3);
  assert.is(d.stepName, 'b');
  assert.is(d.reason, 'b says no');
  assert.is(timers.live(), 0, 'budget timer cancelled');
});

s('steps that answer at once need no budget timer; from a step that waits on, the timer holds what is left', async () => {
  const clock = new ManualClock(1000);
  const timers = new ManualTimers();
  const trace: string[] = [];
  const sync = new PolicyPipeline([fake(1, 'a', null, trace), fake(4, 'b', { action: 'DUNNO', reason: 'known' }, trace)], clock, createSilentLogger(), { budgetMs: 3000, schedule: timers.schedule });
  assert.is((await sync.decide(postfixRequest())).reason, 'known');
  assert.is(timers.pending.length, 0, 'no timer armed for a decision made synchronously');
  const waiting: Check = { step: 2, name: 'waits', run: () => { trace.push('waits'); clock.advanceMs(400); return Promise.resolve(null); } };
  const mixed = new PolicyPipeline([fake(1, 'a', null, trace), waiting, fake(6, 'c', { action: 'REJECT x', reason: 'after the wait' }, trace)], clock, createSilentLogger(), { budgetMs: 3000, schedule: timers.schedule });
  trace.length = 0;
  const d = await mixed.decide(postfixRequest());
  assert.equal(trace, ['a', 'waits', 'c'], 'the steps after the waiting one still run, in order');
  assert.is(d.reason, 'after the wait');
  assert.is(timers.pending.length, 1);
  assert.is(timers.pending[0]?.delayMs, 2600, 'armed once a step waits, with the budget left');
  assert.is(timers.live(), 0, 'and cancelled after the decision');
});

s('no verdict -> step 11 accept DUNNO; elapsedMs from the injected clock', async () => {
  const clock = new ManualClock(5000);
  const slow: Check = { step: 2, name: 'slow', run: () => { clock.advanceMs(120); return null; } };
  const p = new PolicyPipeline([slow], clock, createSilentLogger(), { schedule: new ManualTimers().schedule });
  const d = await p.decide(postfixRequest());
  assert.equal(d, { action: 'DUNNO', step: 11, stepName: 'accept', reason: 'no step decided', elapsedMs: 120 });
});

s('non-RCPT states get DUNNO at step 0 without running any check', async () => {
  const trace: string[] = [];
  const p = new PolicyPipeline([fake(1, 'a', { action: 'REJECT', reason: 'x' }, trace)], new ManualClock(), createSilentLogger(), { schedule: new ManualTimers().schedule });
  for (const state of ['VRFY', 'DATA', 'END-OF-MESSAGE', 'ETRN', 'MAIL', 'CONNECT', '']) {
    const d = await p.decide(postfixRequest({ protocol_state: state }));
    assert.is(d.action, 'DUNNO', state);
    assert.is(d.step, 0);
    assert.is(d.stepName, 'not-rcpt');
  }
  assert.equal(trace, []);
  assert.is((await p.decide(postfixRequest({ protocol_state: 'rcpt' }))).action, 'REJECT', 'state compared case-insensitively');
});

s('a request without a usable client_address is malformed: DUNNO at step 0, no check runs, one warning', async () => {
  const trace: string[] = [];
  const { logger, lines } = capturingLogger();
  // A REJECT in step 1 (as the HELO checks give a client that sent no HELO) must not answer a broken request.
  const p = new PolicyPipeline([fake(1, 'helo', { action: 'REJECT 5.5.1 send HELO/EHLO first', reason: 'x' }, trace)], new ManualClock(), logger, { schedule: new ManualTimers().schedule });
  const missing: Record<string, string> = { ...postfixRequest({ helo_name: '' }) };
  delete missing['client_address'];
  for (const [label, request] of [['missing', missing], ['empty', postfixRequest({ client_address: '' })], ['not an address', postfixRequest({ client_address: '999.1.1.1' })]] as const) {
    const d = await p.decide(request);
    assert.is(d.action, 'DUNNO', label);
    assert.is(d.step, 0, label);
    assert.is(d.stepName, 'malformed', label);
    assert.match(d.reason, /client_address .* is not an IP address/, label);
  }
  await new Promise((r) => setTimeout(r, 20)); // pino's async destination
  assert.equal(trace, []);
  assert.is(lines.filter((l) => l['level'] === 'warn' && String(l['msg']).includes('client_address is not an IP address')).length, 3);
  for (const address of ['192.0.2.1', '2001:db8::1']) {
    assert.is((await p.decide(postfixRequest({ client_address: address }))).stepName, 'helo', address);
  }
});

s('a throwing check fails open: DUNNO with its step and the error in the reason', async () => {
  const trace: string[] = [];
  const p = new PolicyPipeline(
    [fake(1, 'boom', () => { throw new PolicyError('POLICY_ERR_TEST', 'exploded'); }, trace), fake(2, 'after', { action: 'REJECT', reason: 'x' }, trace)],
    new ManualClock(),
    createSilentLogger(),
    { schedule: new ManualTimers().schedule },
  );
  const d = await p.decide(postfixRequest());
  assert.is(d.action, 'DUNNO');
  assert.is(d.step, 1);
  assert.match(d.reason, /check failed: POLICY_ERR_TEST: exploded/);
  assert.equal(trace, ['boom']);
  assert.is(p.stats().checkErrors, 1);
});

s('a rejecting async check and an unusable action also fail open', async () => {
  const rejecting: Check = { step: 1, name: 'async-boom', run: async () => { throw new Error('nope'); } };
  const p1 = new PolicyPipeline([rejecting], new ManualClock(), createSilentLogger(), { schedule: new ManualTimers().schedule });
  assert.is((await p1.decide(postfixRequest())).action, 'DUNNO');
  const injecting = fake(1, 'inject', { action: 'DUNNO\n\naction=OK', reason: 'evil' });
  const p2 = new PolicyPipeline([injecting], new ManualClock(), createSilentLogger(), { schedule: new ManualTimers().schedule });
  const d = await p2.decide(postfixRequest());
  assert.is(d.action, 'DUNNO');
  assert.match(d.reason, /POLICY_ERR_BAD_ACTION/);
});

s('budget: a hanging check is cut off by the timer -> DUNNO "budget exceeded", later checks never run', async () => {
  const trace: string[] = [];
  const timers = new ManualTimers();
  let release: (r: CheckResult | null) => void = () => undefined;
  const hanging: Check = { step: 8, name: 'dnsbl', run: () => new Promise((r) => { release = r; }) };
  const p = new PolicyPipeline([hanging, fake(10, 'greylist', { action: 'DEFER_IF_PERMIT', reason: 'x' }, trace)], new ManualClock(), createSilentLogger(), { budgetMs: 3000, schedule: timers.schedule });
  const pending = p.decide(postfixRequest());
  await flush();
  assert.is(timers.pending[0]?.delayMs, 3000);
  timers.fireAll();
  const d = await pending;
  assert.is(d.action, 'DUNNO');
  assert.is(d.reason, 'budget exceeded');
  assert.is(d.step, 8);
  assert.is(d.stepName, 'dnsbl');
  release(null); // the abandoned check finishes late: nothing else may run
  await flush();
  assert.equal(trace, []);
  assert.is(p.stats().budgetExceeded, 1);
});

s('budget: a step that used the budget on the clock stops the pipeline before the next step', async () => {
  const clock = new ManualClock();
  const trace: string[] = [];
  const slow: Check = { step: 7, name: 'slow', run: () => { clock.advanceMs(3500); return null; } };
  const p = new PolicyPipeline([slow, fake(10, 'greylist', { action: 'DEFER_IF_PERMIT', reason: 'x' }, trace)], clock, createSilentLogger(), { budgetMs: 3000, schedule: new ManualTimers().schedule });
  const d = await p.decide(postfixRequest());
  assert.is(d.reason, 'budget exceeded');
  assert.is(d.stepName, 'slow', 'the step that spent the budget');
  assert.is(d.elapsedMs, 3500);
  assert.equal(trace, []);
});

s('context: client address, deadline, record flag, shared memo; prepare() runs for all before any run()', async () => {
  const clock = new ManualClock(10_000);
  const seen: string[] = [];
  let ctxSeen: CheckContext | undefined;
  const a: Check = { step: 7, name: 'a', prepare: (ctx) => { seen.push('prep-a'); ctx.memo.set('k', 42); }, run: (ctx) => { seen.push('run-a'); ctxSeen = ctx; return null; } };
  const b: Check = { step: 9, name: 'b', prepare: () => { seen.push('prep-b'); throw new Error('prepare failure is logged, not fatal'); }, run: (ctx) => { seen.push(`run-b:${String(ctx.memo.get('k'))}`); return null; } };
  const p = new PolicyPipeline([a, b], clock, createSilentLogger(), { budgetMs: 2500, schedule: new ManualTimers().schedule });
  await p.decide(postfixRequest({ client_address: '198.51.100.7' }), { record: false });
  assert.equal(seen, ['prep-a', 'prep-b', 'run-a', 'run-b:42']);
  assert.is(ctxSeen?.clientAddress, '198.51.100.7');
  assert.is(ctxSeen?.deadlineAtMs, 12_500);
  assert.is(ctxSeen?.nowMs, 10_000);
  assert.is(ctxSeen?.record, false);
  await p.decide(postfixRequest());
  assert.is(ctxSeen?.record, true, 'record defaults to true');
  assert.is(p.stats().checkErrors, 2);
});

s('steps must ascend within 1-10', () => {
  const code = (checks: Check[]): string | undefined => {
    try {
      new PolicyPipeline(checks, new ManualClock(), createSilentLogger());
    } catch (err) {
      return (err as PolicyError).code;
    }
    return undefined;
  };
  assert.is(code([fake(2, 'x', null), fake(1, 'y', null)]), 'POLICY_ERR_PIPELINE');
  assert.is(code([fake(2, 'x', null), fake(2, 'y', null)]), 'POLICY_ERR_PIPELINE');
  assert.is(code([fake(11, 'x', null)]), 'POLICY_ERR_PIPELINE');
  assert.is(code([fake(1, 'x', null), fake(10, 'y', null)]), undefined);
});

s('one info line per decision with the documented fields', async () => {
  const { logger, lines } = capturingLogger();
  const clock = new ManualClock();
  const p = new PolicyPipeline([fake(3, 'sender-syntax', { action: 'REJECT 5.1.7 bad', reason: 'bad sender' })], clock, logger, { schedule: new ManualTimers().schedule });
  await p.decide(postfixRequest({ sender: 'x' }));
  await new Promise((r) => setTimeout(r, 20)); // pino's async destination
  const decisions = lines.filter((l) => l.msg === 'policy decision');
  assert.is(decisions.length, 1);
  const line = decisions[0]!;
  assert.is(line.level, 'info');
  for (const [k, v] of Object.entries({ client: '192.0.2.10', clientName: 'mail.example.net', helo: 'mail.example.net', sender: 'x', recipient: 'bob@example.org', step: 3, stepName: 'sender-syntax', action: 'REJECT 5.1.7 bad', reason: 'bad sender', elapsedMs: 0 })) {
    assert.equal(line[k], v, k);
  }
});

s('over-long request values are logged clipped to 300 characters and a count', async () => {
  const { logger, lines } = capturingLogger();
  const p = new PolicyPipeline([fake(3, 'sender-syntax', { action: 'REJECT 5.1.7 bad', reason: 'bad sender' })], new ManualClock(), logger, { schedule: new ManualTimers().schedule });
  await p.decide(postfixRequest({ sender: 's'.repeat(3000), helo_name: 'h'.repeat(300) }));
  await new Promise((r) => setTimeout(r, 20));
  const line = lines.find((l) => l.msg === 'policy decision')!;
  assert.is(line.sender, `${'s'.repeat(300)}...(2700 more characters)`);
  assert.is(line.helo, 'h'.repeat(300), 'a value at the limit is kept whole');
});

s('stats count decisions by step and verdict', async () => {
  let n = 0;
  const alternating = fake(4, 'rcpt', () => (n++ % 2 === 0 ? { action: '550 5.1.1 User unknown', reason: 'x' } : null));
  const p = new PolicyPipeline([alternating], new ManualClock(), createSilentLogger(), { schedule: new ManualTimers().schedule });
  for (let i = 0; i < 4; i++) await p.decide(postfixRequest());
  await p.decide(postfixRequest({ protocol_state: 'DATA' }));
  const st = p.stats();
  assert.is(st.decisions, 5);
  assert.equal(st.byStep, [
    { step: 0, stepName: 'not-rcpt', verdict: 'DUNNO', count: 1 },
    { step: 4, stepName: 'rcpt', verdict: 'REJECT', count: 2 },
    { step: 11, stepName: 'accept', verdict: 'DUNNO', count: 2 },
  ]);
});

s('actionVerdict: the fast reading of plain actions agrees with the general one', () => {
  const general = (a: string): string => {
    const word = (a.trim().split(/\s+/, 1)[0] ?? '').toUpperCase();
    if (/^5\d\d$/.test(word)) return 'REJECT';
    if (/^4\d\d$/.test(word)) return 'DEFER';
    return word;
  };
  const actions = [
    'DUNNO', 'OK', 'dunno', 'REJECT', 'REJECT 5.7.1 listed', '554 5.7.1 Service unavailable', '550', '451 4.3.5 x', '4xx later',
    '45 short', '5555 long', 'DEFER_IF_PERMIT 4.2.0 Greylisted by mxsentry, try again in 37 seconds', 'PREPEND X-Greylist: delayed 61 seconds',
    ' DUNNO', 'DUNNO\tx', 'REJECT\u00a0x', '\u00a0REJECT x', 'défer later', 'x', '', '   ', 'A B', 'FILTER smtp:[127.0.0.1]:10025', '5a1 x', '4\u0661\u0662 x',
  ];
  for (const a of actions) assert.is(actionVerdict(a), general(a), JSON.stringify(a));
});

s('actionVerdict classifies actions and numeric replies', () => {
  assert.is(actionVerdict('REJECT 5.7.1 listed'), 'REJECT');
  assert.is(actionVerdict('defer_if_permit 4.7.1 Greylisted'), 'DEFER_IF_PERMIT');
  assert.is(actionVerdict('550 5.1.1 User unknown'), 'REJECT');
  assert.is(actionVerdict('450 4.7.1 later'), 'DEFER');
  assert.is(actionVerdict('PREPEND X-Greylist: delayed'), 'PREPEND');
});

s('real timer default: a short budget cuts off a hanging check', async () => {
  const p = new PolicyPipeline([{ step: 8, name: 'hang', run: () => new Promise<null>(() => undefined) }], new ManualClock(), createSilentLogger(), { budgetMs: 20 });
  const d = await p.decide(postfixRequest());
  assert.is(d.reason, 'budget exceeded');
});

s.run();
