// The literal text a regular expression requires at the end of every string it matches, so a
// table of regexes (postgrey-whitelist.ts's `/regex/` client entries, ~35 in Debian's file, each
// like /^smtp\d+\.orange\.fr$/) can skip the regexes whose suffix a client name does not end with,
// instead of running every one on every decision. Pure; called when a table is built.

/** Letters, digits, '-' and '_': the characters taken as literals when written bare. */
const BARE_LITERAL = /^[A-Za-z0-9_-]$/;

/**
 * The lower-case literal every match of `re` ends with, or '' when none can be told (then the
 * regex is simply always run). Only an unescaped `$` as the pattern's last character, without the
 * `m` flag, ends a match at the end of the input (a pattern with the `u` or `v` flag is not read:
 * there an `i` match folds non-ASCII characters to ASCII letters); the suffix is the run of plain characters (letters,
 * digits, '-', '_', and escaped '.' or '-') right before it that no quantifier applies to. A pattern
 * with '|' outside a group is not read (an alternative could end otherwise). Escapes that take following
 * characters (\x41, \u0041, \cJ, \12) make those characters non-literal, so it never
 * reads them as text; the answer is only ever shorter than the true suffix, never wrong.
 */
export function requiredSuffix(re: RegExp): string {
  // With u (or v) and i, 'k' also matches the Kelvin sign and 's' the long s: no ASCII suffix then.
  if (re.multiline || re.unicode || re.flags.includes('v')) return '';
  const src = re.source;
  let depth = 0;
  // One entry per atom: its lower-case literal character, or null for anything else.
  const atoms: (string | null)[] = [];
  let endAnchored = false;
  let i = 0;
  while (i < src.length) {
    const c = src[i] as string;
    if (c === '\\') {
      const d = src[i + 1] ?? '';
      i += 2;
      if (d === '.' || d === '-') {
        atoms.push(d);
        continue;
      }
      atoms.push(null);
      // Only characters that would otherwise read as literals are skipped (hex digits, a control
      // letter), never syntax: '\u{', '\p{' and '\k<' are left to the loop, whose '{', '}', '<'
      // and '>' are no literals. Without the u flag '\u{1|a}' is 'u{1' or 'a}', and '\k<a|b>'
      // without a named group is 'k<a' or 'b>': skipping to the '}' or '>' would hide the '|'.
      if (d === 'x') i += skipWhile(src, i, /[0-9A-Fa-f]/, 2);
      else if (d === 'u') i += skipWhile(src, i, /[0-9A-Fa-f]/, 4);
      else if (d === 'c') i += skipWhile(src, i, /[A-Za-z]/, 1);
      // A backreference takes every digit that still names a group (\10000 with 10,000 groups):
      // all digits are skipped, as digits are never needed to end the run.
      else if (d >= '0' && d <= '9') i += skipWhile(src, i, /[0-9]/, src.length);
      continue;
    }
    if (c === '[') {
      i = classEnd(src, i);
      atoms.push(null);
      continue;
    }
    if (c === '?' || c === '*' || c === '+') {
      if (atoms.length > 0) atoms[atoms.length - 1] = null;
      i += 1;
      continue;
    }
    if (c === '{' && /^\{\d+(,\d*)?\}/.test(src.slice(i))) {
      if (atoms.length > 0) atoms[atoms.length - 1] = null;
      i = src.indexOf('}', i) + 1;
      continue;
    }
    if (c === '(' || c === ')') depth += c === '(' ? 1 : -1;
    // An alternative outside every group may end otherwise; one inside a group ends at its ')',
    // which is no literal, so the run below never reaches into a group.
    else if (c === '|' && depth === 0) return '';
    if (c === '$' && i === src.length - 1) {
      endAnchored = true;
      break;
    }
    atoms.push(BARE_LITERAL.test(c) ? c.toLowerCase() : null);
    i += 1;
  }
  if (!endAnchored) return '';
  let suffix = '';
  for (let k = atoms.length - 1; k >= 0; k--) {
    const a = atoms[k];
    if (a === null || a === undefined) break;
    suffix = a + suffix;
  }
  return suffix;
}

/**
 * Whether `text` ends with `suffix` (lower case, ASCII) ignoring ASCII case, as an `i` regex
 * compares: without the `u` flag no other character matches an ASCII letter.
 */
export function endsWithIgnoringCase(text: string, suffix: string): boolean {
  const off = text.length - suffix.length;
  if (off < 0) return false;
  for (let k = 0; k < suffix.length; k++) {
    let c = text.charCodeAt(off + k);
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    if (c !== suffix.charCodeAt(k)) return false;
  }
  return true;
}

/** How many characters from `from` match `re` (one character at a time), at most `max`. */
function skipWhile(src: string, from: number, re: RegExp, max: number): number {
  let n = 0;
  while (n < max && from + n < src.length && re.test(src[from + n] as string)) n++;
  return n;
}

/** The index after the `]` closing the class that opens at `open` (the end of src when unclosed). */
export function classEnd(src: string, open: number): number {
  let i = open + 1;
  if (src[i] === '^') i++;
  // The source is JavaScript's: '[]' (nothing) and '[^]' (any character) end at that ']'; a
  // following '|' is an alternative. (perlToJsPattern writes Perl's leading ']' as '\]'.)
  while (i < src.length) {
    if (src[i] === '\\') i += 2;
    else if (src[i] === ']') return i + 1;
    else i++;
  }
  return src.length;
}
