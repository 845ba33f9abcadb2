// Test doubles for DNS list lookups: a scripted ResolveFn (answers by "qname type", hangs on
// demand, records every call) and timers driven by a ManualClock, so list deadlines are tested
// without sleeping. Test-only; src/ must not import it.
import type { ResolveFn, ResolveOptions, ResolveResult } from '../../src/dns/resolver-api.js';
import type { Timers } from '../../src/util/timers.js';
import type { ManualClock } from '../../src/util/clock.js';
import { Writable } from 'node:stream';
import { createRootLogger, type Logger } from '../../src/util/logger.js';

export type Scripted = ResolveResult | 'hang' | Error | (() => Promise<ResolveResult>);

/** A ResolveFn answering from a table keyed "qname TYPE"; unknown names are NXDOMAIN. */
export class FakeListResolver {
  readonly calls: { name: string; type: string | number; opts: ResolveOptions | undefined }[] = [];
  private readonly table = new Map<string, Scripted>();
  private readonly hanging: (() => void)[] = [];

  set(name: string, type: 'A' | 'TXT', answer: Scripted): this {
    this.table.set(`${name.toLowerCase()} ${type}`, answer);
    return this;
  }

  /** Settles every hanging lookup with SERVFAIL so no promise is left pending after a test. */
  releaseHanging(): void {
    for (const release of this.hanging.splice(0)) release();
  }

  readonly resolve: ResolveFn = (name, type, opts) => {
    this.calls.push({ name, type, opts });
    const scripted = this.table.get(`${name.toLowerCase()} ${String(type)}`);
    if (scripted === undefined) return Promise.resolve(nxdomain());
    if (scripted === 'hang') {
      return new Promise((resolve) => this.hanging.push(() => resolve(servfail('deadline'))));
    }
    if (scripted instanceof Error) return Promise.reject(scripted);
    if (typeof scripted === 'function') return scripted();
    return Promise.resolve(scripted);
  };
}

export function aAnswer(name: string, ...addresses: string[]): ResolveResult {
  return {
    rcode: 0,
    records: addresses.map((data) => ({ name, type: 'A', ttl: 300, data })),
    answers: [],
    authorities: [],
    ttlSec: 300,
    source: 'recursion',
  };
}

export function txtAnswer(name: string, ...texts: string[][]): ResolveResult {
  return {
    rcode: 0,
    records: texts.map((data) => ({ name, type: 'TXT', ttl: 300, data })),
    answers: [],
    authorities: [],
    ttlSec: 300,
    source: 'recursion',
  };
}

export function nxdomain(): ResolveResult {
  return { rcode: 3, records: [], answers: [], authorities: [], ttlSec: 300, source: 'recursion' };
}

export function servfail(failure: string): ResolveResult {
  return { rcode: 2, records: [], answers: [], authorities: [], ttlSec: 0, source: 'recursion', failure };
}

/** Timers that fire only when advance() moves the ManualClock past their due time. */
export class ManualTimers implements Timers {
  private seq = 0;
  private readonly pending = new Map<number, { dueMs: number; fn: () => void }>();
  constructor(private readonly clock: ManualClock) {}

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.pending.set(id, { dueMs: this.clock.nowMs() + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  get size(): number {
    return this.pending.size;
  }

  /** Moves the clock and runs due timers in due order, letting promise callbacks run in between. */
  async advance(ms: number): Promise<void> {
    const target = this.clock.nowMs() + ms;
    for (;;) {
      let next: [number, { dueMs: number; fn: () => void }] | undefined;
      for (const entry of this.pending) if (entry[1].dueMs <= target && (!next || entry[1].dueMs < next[1].dueMs)) next = entry;
      if (!next) break;
      this.pending.delete(next[0]);
      if (next[1].dueMs > this.clock.nowMs()) this.clock.setMs(next[1].dueMs);
      next[1].fn();
      await flush();
    }
    this.clock.setMs(target);
    await flush();
  }
}

/** Lets queued promise callbacks run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
  await new Promise((resolve) => setImmediate(resolve));
}

/** A logger whose JSON lines are collected in `lines`. */
export function captureLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: createRootLogger('debug', sink), lines };
}
