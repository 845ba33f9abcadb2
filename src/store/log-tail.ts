// The newest replication log entries this process committed, kept in memory so that readLog serves
// a peer link that keeps up with the log without reading and decoding LMDB (lmdb-greylist-store.ts
// owns one and feeds it from its write queue). It holds a run of consecutive sequence numbers
// only, and answers only when that run reaches the last sequence LMDB holds; anything else (an
// entry another process appended, a cursor older than the run) is left to the LMDB read.
import type { ReplogEntry } from './record-codec.js';

/** Entries kept by default: a few seconds of a busy node's log, a few MB. */
export const DEFAULT_LOG_TAIL_ENTRIES = 8192;

export class LogTail {
  /** Consecutive entries, oldest first: entries[i].seq === entries[0].seq + i. */
  private entries: ReplogEntry[] = [];
  /** Index of the oldest live entry (the array is compacted when half of it is dead). */
  private head = 0;

  constructor(private readonly capacity = DEFAULT_LOG_TAIL_ENTRIES) {}

  /** Adds committed entries (ascending). A gap before them (entries this process did not log) restarts the run. */
  committed(entries: readonly ReplogEntry[]): void {
    if (entries.length === 0) return;
    const last = this.lastSeq();
    if (last === undefined || entries[0]!.seq !== last + 1) this.clear();
    for (const e of entries) this.entries.push(e);
    const live = this.entries.length - this.head;
    if (live > this.capacity) this.head += live - this.capacity;
    if (this.head > this.capacity) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  /** Forgets entries with seq <= upTo (the log was trimmed up to there). */
  trimmed(upTo: number): void {
    const first = this.firstSeq();
    if (first === undefined || upTo < first) return;
    this.head = Math.min(this.entries.length, this.head + (upTo - first + 1));
    if (this.head === this.entries.length) this.clear();
  }

  clear(): void {
    this.entries = [];
    this.head = 0;
  }

  /**
   * Entries with seq > afterSeq, at most `limit`, when the run holds all of them up to `lastSeqInDb`
   * (the last sequence LMDB holds); undefined when the caller must read LMDB. The entries are shared
   * with other readers: read only.
   */
  read(afterSeq: number, limit: number, lastSeqInDb: number): ReplogEntry[] | undefined {
    const first = this.firstSeq();
    const last = this.lastSeq();
    if (first === undefined || last === undefined || last !== lastSeqInDb || afterSeq + 1 < first) return undefined;
    if (afterSeq >= last) return [];
    const from = this.head + (afterSeq + 1 - first);
    return this.entries.slice(from, Math.min(this.entries.length, from + limit));
  }

  private firstSeq(): number | undefined {
    return this.head < this.entries.length ? this.entries[this.head]!.seq : undefined;
  }

  private lastSeq(): number | undefined {
    return this.head < this.entries.length ? this.entries[this.entries.length - 1]!.seq : undefined;
  }
}
