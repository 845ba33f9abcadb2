// The error of a table file with bad lines: every bad line's problem ("file:line: what"), collected
// by util/line-problems.ts. Thrown by the table parsers (recipient-table.ts, cidr-table.ts).
import { PolicyError } from '../../util/errors.js';
import type { LineProblemsError } from '../../util/line-problems.js';

/** POLICY_ERR_TABLE_SYNTAX with each bad line's problem; the message holds them one per line. */
export class TableSyntaxError extends PolicyError implements LineProblemsError {
  constructor(readonly problems: readonly string[]) {
    super('POLICY_ERR_TABLE_SYNTAX', problems.join('\n'));
  }
}
