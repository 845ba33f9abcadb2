// Which postgrey `/regex/` whitelist entries can take exponential time: a group repeated without a
// small bound whose body can match one text in more than one way per repetition, as in /^(a+)+$/,
// /^(a{1,2})+$/, /^(.*\.)*x$/ or /^(a|aa)+$/. JavaScript's backtracking engine has no time limit
// and runs on the daemon's one thread, so one client name or recipient such a pattern fails on
// (28 letters for /^(a+)+$/: 1.5 s; 80: for ever) would stall every DNS answer and policy
// decision. postgrey-whitelist.ts skips these entries with a warning. Pure; called when a table is
// built. It reads the structure only, erring on the side of flagging, except for one common safe
// shape: a body that ends (or starts) with a required separator its repeated parts cannot match, as in
// /^(\w+\.)*example\.com$/ or /^([a-z0-9-]+\.)+example\.com$/, where each repetition ends at a
// separator and so splits the text one way only.
import { classEnd } from './regex-suffix.js';

/** What opens a group body after its '(' other than the body itself: ?:, lookarounds, a name. */
const GROUP_PREFIX = /^\?(?::|=|!|<=|<!|<[A-Za-z]\w*>)/;

/** An outer repetition up to this many times is small enough to leave alone ({2}, {1,3}). */
const MAX_BOUNDED_REPEAT = 16;

interface Quantifier {
  /** Characters the quantifier takes, a lazy `?` included. */
  length: number;
  /** Least and most repeats (Infinity: unbounded). */
  min: number;
  max: number;
}

/** The quantifier starting at `i` of a pattern, or null when none does. */
function quantifierAt(src: string, i: number): Quantifier | null {
  const c = src[i];
  let q: Quantifier | null = null;
  if (c === '*') q = { length: 1, min: 0, max: Infinity };
  else if (c === '+') q = { length: 1, min: 1, max: Infinity };
  else if (c === '?') q = { length: 1, min: 0, max: 1 };
  else if (c === '{') {
    const m = /^\{(\d+)(,(\d*))?\}/.exec(src.slice(i));
    if (!m) return null; // a literal "{"
    const min = Number(m[1]);
    q = { length: m[0].length, min, max: m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]) };
  }
  if (q && src[i + q.length] === '?') q.length++;
  return q;
}

/** One atom of a group body: its source, and the quantifier applied to it. */
interface Atom {
  src: string;
  q: Quantifier | null;
  /** A group of its own (its inside is not looked into by `canMatch`). */
  group: boolean;
}

/** The end (exclusive) of the atom starting at `i`: an escape, a class, a group or one character. */
function atomEnd(src: string, i: number): number {
  const c = src[i];
  if (c === '\\') return i + 2;
  if (c === '[') return classEnd(src, i);
  if (c === '(') {
    let depth = 0;
    let j = i;
    while (j < src.length) {
      const d = src[j];
      if (d === '(') depth++;
      else if (d === ')' && --depth === 0) return j + 1;
      j = d === '\\' || d === '[' ? atomEnd(src, j) : j + 1;
    }
    return src.length;
  }
  return i + 1;
}

/** The atoms of a group body (between its parentheses, a "(?:" prefix left out), or null when it has a top-level '|'. */
function atomsOf(body: string): Atom[] | null {
  const atoms: Atom[] = [];
  let i = GROUP_PREFIX.exec(body)?.[0].length ?? 0;
  while (i < body.length) {
    if (body[i] === '|') return null;
    const end = atomEnd(body, i);
    const q = quantifierAt(body, end);
    atoms.push({ src: body.slice(i, end), q, group: body[i] === '(' });
    i = end + (q?.length ?? 0);
  }
  return atoms;
}

/** Whether an atom may match the single character `ch` (true when it cannot be told). */
function canMatch(atom: Atom, ch: string, ignoreCase: boolean): boolean {
  if (atom.group) return true;
  const s = atom.src;
  const fold = (c: string): string => (ignoreCase ? c.toLowerCase() : c);
  if (s === '.') return ch !== '\n';
  if (s.startsWith('\\')) {
    const e = s[1] as string;
    if (e === 'd') return /[0-9]/.test(ch);
    if (e === 'w') return /\w/.test(ch);
    if (e === 's') return /\s/.test(ch);
    if (/[A-Za-z0-9]/.test(e)) return true; // \D, \W, \S, \b, \x41, \1 ...: not read
    return fold(e) === fold(ch);
  }
  if (s.startsWith('[')) {
    if (s[1] === '^') {
      // [^.]: anything but the listed characters; a class escape in it is not read.
      const listed = s.slice(2, -1);
      return /\\[A-Za-z0-9]/.test(listed) || !canMatch({ src: `[${listed}]`, q: null, group: false }, ch, ignoreCase);
    }
    const inner = s.slice(1, -1);
    for (let j = 0; j < inner.length; j++) {
      let c = inner[j] as string;
      if (c === '\\') {
        const e = inner[++j] as string;
        if (e === 'd' || e === 'w' || e === 's') {
          if (new RegExp(`\\${e}`).test(ch)) return true;
          continue;
        }
        if (/[A-Za-z0-9]/.test(e)) return true; // \D, \x41 ...: not read
        c = e;
      }
      if (inner[j + 1] === '-' && j + 2 < inner.length) {
        let hi = inner[j + 2] as string;
        if (hi === '\\') hi = inner[j + 3] ?? hi;
        const x = fold(ch);
        if ((x >= fold(c) && x <= fold(hi)) || (ch >= c && ch <= hi)) return true;
        j += hi === inner[j + 2] ? 2 : 3;
        continue;
      }
      if (fold(c) === fold(ch)) return true;
    }
    return false;
  }
  return fold(s) === fold(ch);
}

/** The character an unquantified literal or escaped-literal atom requires, or undefined. */
function separatorOf(atom: Atom | undefined): string | undefined {
  if (!atom || atom.q || atom.group) return undefined;
  const escaped = atom.src.startsWith('\\');
  const sep = escaped ? atom.src.slice(1) : atom.src;
  if (sep.length !== 1 || (escaped && /[A-Za-z0-9]/.test(sep)) || (!escaped && /[.[(|^$]/.test(sep))) return undefined;
  return sep;
}

/**
 * Whether a repeated group's body splits a text one way only: it holds no group, and it ends (or
 * starts) with one required character that no quantified atom of the body can match, so every
 * repetition ends (or starts) at such a character: (\w+\.)*, (\.\w+)+.
 */
function splitsOneWay(atoms: Atom[], ignoreCase: boolean): boolean {
  if (atoms.some((a) => a.group)) return false;
  for (const edge of [atoms[atoms.length - 1], atoms[0]]) {
    const sep = separatorOf(edge);
    if (sep !== undefined && atoms.every((a) => a === edge || a.q === null || !canMatch(a, sep, ignoreCase))) return true;
  }
  return false;
}

/**
 * The first part of a pattern that repeats (without a small bound) a group whose body can match
 * one text in several ways: a repetition inside it ("(a+)+", "(a{1,2})+", "(.*\.)*") or an
 * alternation ("(a|aa)+"), unless the body ends or starts with a separator as described above. Undefined when
 * there is none.
 */
export function nestedRepetition(src: string, ignoreCase = true): string | undefined {
  let i = 0;
  while (i < src.length) {
    const end = atomEnd(src, i);
    if (src[i] === '(') {
      const q = quantifierAt(src, end);
      const body = src.slice(i + 1, end - 1);
      if (q && q.max > MAX_BOUNDED_REPEAT) {
        const atoms = atomsOf(body);
        const ambiguous = atoms === null || atoms.some((a) => a.group || (a.q !== null && a.q.max > 1));
        if (ambiguous && (atoms === null || !splitsOneWay(atoms, ignoreCase))) return src.slice(i, end + q.length);
      }
      // Look inside too: "(x(a+)+)" holds the risky part one level down.
      const inner = nestedRepetition(body.replace(GROUP_PREFIX, ''), ignoreCase);
      if (inner !== undefined) return inner;
      i = end + (q?.length ?? 0);
      continue;
    }
    i = end + (quantifierAt(src, end)?.length ?? 0);
  }
  return undefined;
}
