// How long each DNS list has gone without answering (policy/dns-lists.ts keeps one per checker): a
// list that only times out (held back by the resolver, a host blocked by the operator, a dead
// server) makes every client "not listed", and its per-lookup lines are info-level. Once a list
// has been silent this long, over enough lookups, the checker says so at warn.

/** A list silent this long, over at least SILENT_LOOKUPS lookups, is worth a warning. */
export const SILENT_WARN_MS = 5 * 60_000;
export const SILENT_LOOKUPS = 10;

export class DnsListSilence {
  private readonly byZone = new Map<string, { sinceMs: number; lookups: number }>();

  /**
   * Records one lookup of `zone` at nowMs: `answered` false for a timeout or failure. Returns how
   * long and over how many lookups the list has been silent once that passes the warning bounds.
   */
  note(zone: string, answered: boolean, nowMs: number): { silentMs: number; lookups: number } | undefined {
    if (answered) {
      this.byZone.delete(zone);
      return undefined;
    }
    let s = this.byZone.get(zone);
    if (!s) {
      s = { sinceMs: nowMs, lookups: 0 };
      this.byZone.set(zone, s);
    }
    s.lookups++;
    const silentMs = nowMs - s.sinceMs;
    return silentMs >= SILENT_WARN_MS && s.lookups >= SILENT_LOOKUPS ? { silentMs, lookups: s.lookups } : undefined;
  }
}
