// Timer functions behind an interface, so a component's deadlines and periodic work can be driven
// by tests without sleeping (test/helpers/fake-list-resolver.ts ManualTimers). Used by the DNS list
// checker (policy/dns-lists.ts).

/** Timer functions, injectable so tests drive deadlines without sleeping. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Real timers, unref'd so a pending lookup deadline or self test never keeps the process alive. */
export const realTimers: Timers = {
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};
