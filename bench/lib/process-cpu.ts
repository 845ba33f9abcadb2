// CPU time of another process (all its threads) from /proc/PID/stat, for "CPU per answer" in the
// DNS bench. Called by bench/dns-bench.ts around each dnsperf run. Linux only; it reads, never
// signals or changes, the measured process.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { MxError } from '../../src/util/errors.js';

let ticksPerSecond: number | null = null;

/** Clock ticks per second of /proc times (`getconf CLK_TCK`, 100 on Linux). */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === null) {
    const out = execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim();
    const n = Number(out);
    if (!Number.isInteger(n) || n <= 0) throw new MxError('BENCH_ERR_PROC', `getconf CLK_TCK printed '${out}'`);
    ticksPerSecond = n;
  }
  return ticksPerSecond;
}

/**
 * utime + stime of the whole process (every thread, see proc(5)) in microseconds. The resolution
 * is one clock tick (10 ms at CLK_TCK 100), so measure over seconds of work.
 */
export function processCpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces and parentheses: fields restart after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // proc(5): field 3 (state) is rest[0], so utime (14) is rest[11] and stime (15) is rest[12].
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new MxError('BENCH_ERR_PROC', `unexpected /proc/${pid}/stat: ${stat.slice(0, 200)}`);
  return ((utime + stime) * 1e6) / clockTicksPerSecond();
}

/** CPU time of one thread kind of a process, microseconds, user and system apart. */
export interface ThreadCpu {
  user: number;
  system: number;
}

/**
 * utime and stime of every thread of a process (/proc/PID/task/TID/stat), summed by kind: 'main'
 * for the thread whose id is the process id, otherwise the thread's name (comm: 'V8 DefaultWorke',
 * 'libuv-worker', ...). Threads that end between the listing and the read are skipped.
 */
export function threadCpuMicros(pid: number): Map<string, ThreadCpu> {
  const out = new Map<string, ThreadCpu>();
  const perTick = 1e6 / clockTicksPerSecond();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue;
    }
    const kind = Number(tid) === pid ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const t = out.get(kind) ?? { user: 0, system: 0 };
    t.user += Number(rest[11]) * perTick;
    t.system += Number(rest[12]) * perTick;
    out.set(kind, t);
  }
  return out;
}
