// Shared by the in-process developer tools (policy-inproc, dns-cold-inproc, replication-inproc):
// integer flags, the main thread's own CPU time and a CPU profile of chosen stretches.
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

/** The positive integer after `name` on the command line, or `fallback`; throws on anything else. */
export function intArg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} needs a positive integer`);
  return v;
}

/** CPU microseconds of the main thread alone (utime + stime of /proc/self/task/PID/stat; 10 ms ticks). */
export function mainThreadCpuUs(): number {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

/** The V8 CPU profiler of this thread, when `--profile FILE` was given (else every call does nothing). */
export class InprocProfiler {
  readonly file: string | undefined;
  private session: Session | undefined;

  constructor(flag = '--profile') {
    const i = process.argv.indexOf(flag);
    this.file = i >= 0 ? process.argv[i + 1] : undefined;
  }

  async start(): Promise<void> {
    if (this.file === undefined) return;
    if (!this.session) {
      this.session = new Session();
      this.session.connect();
      await this.session.post('Profiler.enable');
    }
    await this.session.post('Profiler.start');
  }

  /** Stops profiling and writes the profile to the file (plus `suffix`); returns the path written. */
  async stop(suffix = ''): Promise<string | undefined> {
    if (this.file === undefined || !this.session) return undefined;
    const { profile } = await this.session.post('Profiler.stop');
    const path = `${this.file}${suffix}`;
    writeFileSync(path, JSON.stringify(profile));
    return path;
  }
}
