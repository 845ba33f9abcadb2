// The error of a table file with bad lines: every bad line's problem ("file:line: what"), so
// `config check` and a failed start list them all at once instead of one per run. Thrown by the
// table parsers (recipient-table.ts, cidr-table.ts); read by cli/config-check.ts.
import { PolicyError } from '../../util/errors.js';

/** Most problems one file reports; beyond, a last line says how many more there are. */
export const MAX_REPORTED_LINES = 50;

/** POLICY_ERR_TABLE_SYNTAX with each bad line's problem; the message holds them one per line. */
export class TableSyntaxError extends PolicyError {
  constructor(readonly problems: readonly string[]) {
    super('POLICY_ERR_TABLE_SYNTAX', problems.join('\n'));
  }
}

/** Collects the problems of one parse and throws them together at the end. */
export class LineProblems {
  private readonly problems: string[] = [];
  private extra = 0;

  add(problem: string): void {
    if (this.problems.length < MAX_REPORTED_LINES) this.problems.push(problem);
    else this.extra++;
  }

  /** Throws TableSyntaxError when any line had a problem. */
  throwIfAny(source: string): void {
    if (this.problems.length === 0) return;
    throw new TableSyntaxError(this.extra > 0 ? [...this.problems, `${source}: ${this.extra} more bad line(s) not shown`] : this.problems);
  }
}
