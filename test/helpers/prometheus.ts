// A strict-enough reader of the Prometheus text format for the metrics tests: asserts TYPE before
// samples, well-formed names and labels and no duplicate series, and returns the samples.
import * as assert from 'uvu/assert';

/** Checks the text format rules we rely on; returns the samples as "name{labels}" -> value. */
export function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const typed = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const t = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/.exec(line);
    if (t) {
      assert.not.ok(typed.has(t[1]!), `TYPE twice for ${t[1]}`);
      typed.add(t[1]!);
      continue;
    }
    if (line.startsWith('# HELP ')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$/.exec(line);
    assert.ok(m, `malformed sample line: ${line}`);
    const family = m![1]!.replace(/_(bucket|sum|count)$/, '');
    assert.ok(typed.has(m![1]!) || typed.has(family), `sample before its TYPE: ${line}`);
    const key = `${m![1]}${m![2] ?? ''}`;
    assert.not.ok(samples.has(key), `duplicate series ${key}`);
    samples.set(key, Number(m![3]));
  }
  return samples;
}

