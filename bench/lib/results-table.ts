// Plain-text tables of bench results for the terminal (and the lead's commit message). Called by
// bench/run.ts. Pure formatting: no I/O, no measurement.

/** One row: a metric with mxsentry's and Unbound's figure, their ratio and an optional target. */
export interface TableRow {
  metric: string;
  unit: string;
  mxsentry: number;
  unbound: number;
  ratio: number;
  target?: { text: string; met: boolean };
}

/** Fixed significant figures, thousands grouped; NaN as 'n/a'. */
export function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  const abs = Math.abs(x);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** The comparison table: metric | unit | mxsentry | unbound | ratio | target. */
export function formatComparisonTable(rows: readonly TableRow[]): string {
  const header = ['metric', 'unit', 'mxsentry', 'unbound', 'ratio', 'target'];
  const body = rows.map((r) => [
    r.metric, r.unit, formatNumber(r.mxsentry), formatNumber(r.unbound), Number.isFinite(r.ratio) ? `${r.ratio.toFixed(2)}x` : 'n/a',
    r.target ? `${r.target.text}: ${r.target.met ? 'met' : 'NOT met'}` : '',
  ]);
  const all = [header, ...body];
  const widths = header.map((_, i) => Math.max(...all.map((row) => (row[i] ?? '').length)));
  const numeric = new Set([2, 3, 4]);
  const line = (row: string[]): string =>
    row.map((cell, i) => (numeric.has(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

/** The median of the values (the mean of the middle two for an even count); NaN when empty. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}
