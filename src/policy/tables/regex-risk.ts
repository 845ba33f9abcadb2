// Which postgrey `/regex/` whitelist entries can take exponential time: a repeated group that
// itself holds an unbounded repetition, as in /^(a+)+$/ or /^(.*\.)*example\.com$/. JavaScript's
// backtracking engine has no time limit and runs on the daemon's one thread, so one client name
// such a pattern fails on (28 letters for /^(a+)+$/: 1.5 s; 80: for ever) would stall every DNS
// answer and policy decision. postgrey-whitelist.ts skips these entries with a warning. Pure;
// called when a table is built. It reads the structure only: overlapping alternatives under a
// repetition (/^(a|ab)*$/) are not detected.

/** A bounded repetition counts as unbounded above this many repeats ({1,100} backtracks like +). */
const MAX_BOUNDED_REPEAT = 16;

interface Quantifier {
  /** Characters the quantifier takes, a lazy `?` included. */
  length: number;
  /** Whether it lets its atom match more than once. */
  repeats: boolean;
  /** Whether the number of repeats has no (small) bound. */
  unbounded: boolean;
}

/** The quantifier starting at `i` of a pattern, or null when none does. */
function quantifierAt(src: string, i: number): Quantifier | null {
  const c = src[i];
  let q: Quantifier | null = null;
  if (c === '*' || c === '+') q = { length: 1, repeats: true, unbounded: true };
  else if (c === '?') q = { length: 1, repeats: false, unbounded: false };
  else if (c === '{') {
    const m = /^\{(\d+)(,(\d*))?\}/.exec(src.slice(i));
    if (!m) return null; // a literal "{"
    const min = Number(m[1]);
    const max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
    q = { length: m[0].length, repeats: max > 1, unbounded: max > MAX_BOUNDED_REPEAT };
  }
  if (q && src[i + q.length] === '?') q.length++;
  return q;
}

/**
 * The first part of a JavaScript pattern that repeats a group holding an unbounded repetition
 * ("(a+)+", "(.*\.)*"), or undefined when it has none.
 */
export function nestedRepetition(src: string): string | undefined {
  // One frame per open group (the whole pattern at the bottom): where it starts, and whether it
  // holds an unbounded repetition at any depth.
  const frames: Array<{ start: number; unbounded: boolean }> = [{ start: 0, unbounded: false }];
  let i = 0;
  while (i < src.length) {
    const c = src[i] as string;
    let atomEnd = i + 1;
    let group: { start: number; unbounded: boolean } | undefined;
    if (c === '\\') {
      atomEnd = i + 2;
    } else if (c === '[') {
      // A class is one atom; quantifier characters inside it are literals.
      let j = i + 1;
      if (src[j] === '^') j++;
      if (src[j] === ']') j++;
      while (j < src.length && src[j] !== ']') j += src[j] === '\\' ? 2 : 1;
      atomEnd = j + 1;
    } else if (c === '(') {
      frames.push({ start: i, unbounded: false });
      i++;
      continue;
    } else if (c === ')') {
      if (frames.length > 1) group = frames.pop();
    }
    const q = quantifierAt(src, atomEnd);
    if (group && q?.repeats && group.unbounded) return src.slice(group.start, atomEnd + q.length);
    const top = frames[frames.length - 1] as { start: number; unbounded: boolean };
    if (group?.unbounded || q?.unbounded) top.unbounded = true;
    i = atomEnd + (q?.length ?? 0);
  }
  return undefined;
}
