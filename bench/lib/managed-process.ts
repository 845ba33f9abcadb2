// Child processes and other resources the bench starts (resolvers, dnsperf, fake servers, temp
// folders), registered so that one cleanup stops all of them: at the end, on error and on SIGINT.
// Used by bench/run.ts and bench/dns-bench.ts. It must never signal a process it did not spawn
// itself (no kill by name), and every wait here is bounded by a deadline.
import { spawn, type ChildProcess } from 'node:child_process';
import { MxError } from '../../src/util/errors.js';

/** Something to undo at cleanup; run in reverse order of registration. */
export type CleanupStep = () => Promise<void> | void;

/** Cleanup steps plus the live children, for `stopAll()` and the synchronous exit hook. */
export class ResourceRegistry {
  private readonly steps: Array<{ label: string; step: CleanupStep }> = [];
  private readonly children = new Set<ManagedProcess>();
  private stopping: Promise<void> | null = null;

  /** Registers a step; returns a function that runs it early (and only once). */
  add(label: string, step: CleanupStep): () => Promise<void> {
    const entry = { label, step };
    this.steps.push(entry);
    return async () => {
      const i = this.steps.indexOf(entry);
      if (i < 0) return;
      this.steps.splice(i, 1);
      await step();
    };
  }

  /** Tracks a child so that stopAll() and killAllNow() reach it. */
  track(child: ManagedProcess): void {
    this.children.add(child);
    child.exited.then(
      () => this.children.delete(child),
      () => this.children.delete(child),
    );
  }

  /** Stops every child (SIGTERM, then SIGKILL) and runs every step, newest first; errors are printed, not thrown. */
  stopAll(): Promise<void> {
    if (!this.stopping) {
      this.stopping = (async () => {
        await Promise.all([...this.children].map((c) => c.stop()));
        while (this.steps.length > 0) {
          const entry = this.steps.pop();
          if (!entry) break;
          try {
            await entry.step();
          } catch (err) {
            console.error(`bench cleanup: ${entry.label}: ${(err as Error).message}`);
          }
        }
      })();
    }
    return this.stopping;
  }

  /** Last resort from a synchronous 'exit' handler: SIGKILL every child still running. */
  killAllNow(): void {
    for (const c of this.children) c.killNow();
  }
}

/** Options of one child. */
export interface SpawnOptions {
  /** Label for messages ('unbound', 'mxsentry', 'dnsperf'). */
  name: string;
  command: string;
  args: string[];
  cwd?: string;
  /** Milliseconds between SIGTERM and SIGKILL in stop(); default 5000. */
  killAfterMs?: number;
  /** Keep at most this many bytes of stdout/stderr each (the tail); default 1 MiB. */
  maxOutputBytes?: number;
}

/** How a child ended. */
export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One spawned program: its pid, output tails, and a bounded stop(). */
export class ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** Resolves when the process has exited (never rejects; spawn errors resolve with code null). */
  readonly exited: Promise<ExitStatus>;
  private out = '';
  private err = '';
  private status: ExitStatus | null = null;
  private spawnError: Error | null = null;
  private readonly killAfterMs: number;
  private readonly maxOutputBytes: number;

  constructor(opts: SpawnOptions, registry: ResourceRegistry) {
    this.name = opts.name;
    this.killAfterMs = opts.killAfterMs ?? 5000;
    this.maxOutputBytes = opts.maxOutputBytes ?? 1 << 20;
    this.child = spawn(opts.command, opts.args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.setEncoding('utf8');
    this.child.stderr?.setEncoding('utf8');
    this.child.stdout?.on('data', (s: string) => {
      this.out = this.keepTail(this.out + s);
    });
    this.child.stderr?.on('data', (s: string) => {
      this.err = this.keepTail(this.err + s);
    });
    this.exited = new Promise<ExitStatus>((resolve) => {
      this.child.once('error', (e) => {
        this.spawnError = e;
        this.status = { code: null, signal: null };
        resolve(this.status);
      });
      this.child.once('close', (code, signal) => {
        this.status = { code, signal };
        resolve(this.status);
      });
    });
    registry.track(this);
  }

  /** The process id; throws if spawning failed. */
  get pid(): number {
    const pid = this.child.pid;
    if (pid === undefined) {
      throw new MxError('BENCH_ERR_SPAWN', `${this.name}: could not start: ${this.spawnError?.message ?? 'no pid'}`, { cause: this.spawnError });
    }
    return pid;
  }

  get stdout(): string {
    return this.out;
  }

  get stderr(): string {
    return this.err;
  }

  /** Exit status, or null while running. */
  get exitStatus(): ExitStatus | null {
    return this.status;
  }

  /** SIGTERM, then SIGKILL after killAfterMs; resolves once the process is gone. */
  async stop(): Promise<ExitStatus> {
    if (this.status) return this.status;
    this.signal('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.signal('SIGKILL');
        resolve();
      }, this.killAfterMs);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    return this.exited;
  }

  /** SIGKILL without waiting (from synchronous exit handlers). */
  killNow(): void {
    if (!this.status) this.signal('SIGKILL');
  }

  /** Last lines of stderr and stdout, for error messages. */
  describeOutput(maxChars = 2000): string {
    const both = `${this.err.trim()}\n${this.out.trim()}`.trim();
    return both.length > maxChars ? `...${both.slice(-maxChars)}` : both;
  }

  private signal(sig: NodeJS.Signals): void {
    if (this.status || this.child.pid === undefined) return;
    try {
      this.child.kill(sig);
    } catch (err) {
      // ESRCH: it exited between the check and the signal; anything else is worth seeing.
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') console.error(`bench: ${this.name}: ${sig} failed: ${(err as Error).message}`);
    }
  }

  private keepTail(s: string): string {
    return s.length > this.maxOutputBytes ? s.slice(-this.maxOutputBytes) : s;
  }
}

/** Runs a program to completion with a time bound; resolves with its output, rejects on non-zero exit or timeout. */
export async function runToCompletion(
  opts: SpawnOptions & { timeoutMs: number },
  registry: ResourceRegistry,
): Promise<{ stdout: string; stderr: string }> {
  const p = new ManagedProcess(opts, registry);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void p.stop();
  }, opts.timeoutMs);
  const status = await p.exited;
  clearTimeout(timer);
  if (timedOut) throw new MxError('BENCH_ERR_TIMEOUT', `${opts.name}: still running after ${opts.timeoutMs} ms, stopped: ${p.describeOutput()}`);
  if (status.code !== 0) {
    throw new MxError('BENCH_ERR_EXIT', `${opts.name}: exited with ${status.code ?? status.signal ?? 'spawn error'}: ${p.describeOutput()}`);
  }
  return { stdout: p.stdout, stderr: p.stderr };
}
