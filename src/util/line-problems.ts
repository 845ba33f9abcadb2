// The problems of one line-oriented file (a Postfix table, a local zones file), collected over one
// parse and thrown together at its end, so `config check` and a failed start list every bad line at
// once instead of one per run. Used by the table parsers (policy/tables) and the local zones loader
// (dns/server/local-zones.ts); cli/config-check.ts reports each problem of such an error on its own.

/** Most problems one file reports; beyond, a last line says how many more there are. */
export const MAX_REPORTED_LINES = 50;

/** An error that lists every bad line of one file ("file:line: what"), its message holding them one per line. */
export interface LineProblemsError extends Error {
  readonly problems: readonly string[];
}

/** Whether an error lists a file's bad lines (TableSyntaxError, ZoneSyntaxError). */
export function isLineProblemsError(err: unknown): err is LineProblemsError {
  return err instanceof Error && Array.isArray((err as Partial<LineProblemsError>).problems);
}

/** An error's problems one by one: each bad line of a LineProblemsError, else its one message. */
export function problemsOf(err: unknown): readonly string[] {
  return isLineProblemsError(err) ? err.problems : [err instanceof Error ? err.message : String(err)];
}

/** Collects the problems of one parse and throws them together at the end. */
export class LineProblems {
  private readonly problems: string[] = [];
  private extra = 0;

  add(problem: string): void {
    if (this.problems.length < MAX_REPORTED_LINES) this.problems.push(problem);
    else this.extra++;
  }

  /** Throws `toError` of the problems (and a count of those not shown) when any line had one. */
  throwIfAny(source: string, toError: (problems: string[]) => LineProblemsError): void {
    if (this.problems.length === 0) return;
    throw toError(this.extra > 0 ? [...this.problems, `${source}: ${this.extra} more bad line(s) not shown`] : this.problems);
  }
}
