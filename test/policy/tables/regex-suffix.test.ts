// Tests for requiredSuffix, the literal ending a whitelist regex requires (so a client name without
// it skips that regex): what it reads, what it refuses to read, and that it never rejects a name the
// regex matches (Debian's postgrey whitelist and generated names and patterns).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync } from 'node:fs';
import { endsWithIgnoringCase, requiredSuffix } from '../../../src/policy/tables/regex-suffix.js';

const s = suite('policy/tables/regex-suffix');
const sfx = (pattern: string, flags = 'i'): string => requiredSuffix(new RegExp(pattern, flags));

s('the run of plain characters before a final $, lower case', () => {
  assert.is(sfx('^smtp\\d+\\.Orange\\.fr$'), '.orange.fr');
  assert.is(sfx('^mail-in-\\d+\\.arcor-online\\.net$'), '.arcor-online.net');
  assert.is(sfx('^m\\d+-\\d+\\.126\\.com$'), '.126.com');
  assert.is(sfx('^viefep\\d+-int\\.chello\\.at$'), '-int.chello.at');
  assert.is(sfx('^mta[12].siol.net$'), 'net', 'an unescaped dot is any character');
  assert.is(sfx('^(?:smtp\\w*|postfix)[0-9]+-g[0-9]+\\.free\\.fr$'), '.free.fr', "a '|' inside a group");
  assert.is(sfx('[a-z]com$'), 'com');
  assert.is(sfx('x_y$'), 'x_y');
});

s('nothing where the end is not a plain literal', () => {
  assert.is(sfx('^mail\\.example\\.com'), '');
  assert.is(sfx('example\\.com$|^other\\.org$'), '');
  assert.is(sfx('\\.com\\$'), '');
  assert.is(sfx('abc?$'), '', 'the last character is optional');
  assert.is(sfx('ab*$'), '');
  assert.is(sfx('ab+$'), '');
  assert.is(sfx('a.com|b$'), '');
  assert.is(sfx('(?:\\.com)?$'), '');
  assert.is(sfx('\\.com\\b$'), '');
  assert.is(sfx('[.]com]$'), '');
  assert.is(sfx('ab{2}$'), '');
  assert.is(sfx('ab{2,}$'), '');
  assert.is(sfx('(\\.com)$'), '');
  assert.is(sfx('x\\d$'), '');
  assert.is(sfx('a\\.com$', 'im'), '', 'with m, $ also ends a line');
  assert.is(sfx('mask$', 'iu'), '', 'with u and i, k matches the Kelvin sign');
  assert.ok(new RegExp('mask$', 'iu').test('ma\u017f\u212a'));
  assert.is(sfx('ab+?c$'), 'c', 'a lazy quantifier');
});

s('characters an escape takes are never read as text', () => {
  assert.is(sfx('\\x2Ecom$'), 'com', '\\x2E is one character');
  assert.is(sfx('\\x41$'), '');
  assert.is(sfx('\\u0041BC$'), 'bc', 'four hex digits, then text');
  assert.is(sfx('\\u{41}c$', 'iu'), '', 'no suffix is told under the u flag');
  assert.is(sfx('\\u{41}c$'), 'c', 'without u, \\u{41} is u repeated 41 times');
  assert.is(sfx('\\cJab$'), 'ab');
  assert.is(sfx('(a)\\1bc$'), 'bc');
  assert.is(sfx('(?<n>a)\\k<n>bc$'), 'bc');
  assert.is(sfx('\\-x$'), '-x');
  assert.is(sfx('[\\]a]bc$'), 'bc', 'an escaped ] inside a class');
});

s("an escape's braces or angle brackets never hide a '|' or a group (no u flag, no named group)", () => {
  // Without the u flag \u is the letter u and '{' a literal unless it is a quantifier; without a
  // named group \k is the letter k. Each pattern matches its name, which lacks the text after '|'.
  const cases: [string, string][] = [
    ['\\u{1|a}b$', 'mu{1.example.com'],
    ['(\\u{)|a}b$', 'u{.example.com'],
    ['\\u{1}|ab$', 'u.example.com'],
    ['\\k<a|b>c$', 'mk<a.example.com'],
    ['\\kx|y>z$', 'kx.example.com'],
    ['(x\\k<)|y>z$', 'xk<.example.com'],
  ];
  for (const [pattern, name] of cases) {
    const re = new RegExp(pattern, 'i');
    assert.ok(re.test(name), `/${pattern}/i matches ${name}`);
    const suffix = requiredSuffix(re);
    assert.ok(endsWithIgnoringCase(name, suffix), `/${pattern}/i matches ${name} but the suffix ${JSON.stringify(suffix)} would skip it`);
  }
  assert.is(sfx('\\u{2}bc$'), 'bc', 'a quantifier on the u');
  assert.is(sfx('\\u{1F600}bc$', 'iu'), '', 'under the u flag no suffix is told');
  assert.is(sfx('\\p{L}bc$', 'iu'), '');
});

s('a backreference takes all its digits, however many groups there are', () => {
  // Group 10000 is an empty one: /...\10000$/ ends with the 'a' of group 1, never with a '0'.
  const re = new RegExp(`(a)${'()'.repeat(9999)}\\10000$`, 'i');
  assert.ok(re.test('mail.example.a'));
  assert.ok(endsWithIgnoringCase('mail.example.a', requiredSuffix(re)), `suffix ${JSON.stringify(requiredSuffix(re))}`);
  const withText = new RegExp(`(a)${'()'.repeat(9999)}\\10000x$`, 'i');
  assert.is(requiredSuffix(withText), 'x');
  assert.is(sfx('(a)\\1234x$'), 'x', 'octal \\123 then the digit 4: the digit is not needed');
});

s("JavaScript's [] and [^] end at their ']': a '|' after them is read", () => {
  for (const pattern of ['[]|a|]b$', '[^]|a|]b$']) {
    const re = new RegExp(pattern, 'i');
    assert.ok(re.test('xa.example'));
    assert.ok(endsWithIgnoringCase('xa.example', requiredSuffix(re)), `/${pattern}/i: suffix ${JSON.stringify(requiredSuffix(re))}`);
  }
  assert.is(sfx('[^]bc$'), 'bc');
  assert.is(sfx('x[]]$'), '', 'the second ] is a literal ] after an empty class');
});

s('endsWithIgnoringCase compares ASCII letters without case, anything else exactly', () => {
  assert.ok(endsWithIgnoringCase('SMTP1.ORANGE.FR', '.orange.fr'));
  assert.ok(endsWithIgnoringCase('.orange.fr', '.orange.fr'));
  assert.not.ok(endsWithIgnoringCase('orange.fr', '.orange.fr'));
  assert.not.ok(endsWithIgnoringCase('smtp1.orange.frx', '.orange.fr'));
  assert.not.ok(endsWithIgnoringCase('smtp1.orange_fr', '.orange.fr'));
  assert.ok(endsWithIgnoringCase('anything', ''));
});

/** Patterns of Debian's whitelist_clients when installed, plus some of our own. */
function patterns(): RegExp[] {
  const out = [
    '^ms-smtp.*\\.rr\\.com$', '^mta[12].siol.net$', '^.*?.server.arvato-systems.de$', '^(?:mail|fallback-mx)\\d+.atl.registeredsite.com$',
    '^(?:smtp\\w*|postfix)[0-9]+-g[0-9]+\\.free\\.fr$', 'mx[0-9]*\\.EXAMPLE\\.(?:com|net)$', '^a\\x2Eb$', 'b\\-c$',
  ].map((p) => new RegExp(p, 'i'));
  const file = '/etc/postgrey/whitelist_clients';
  if (existsSync(file)) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const m = /^\/(\S+)\/$/.exec(line.trim());
      if (m?.[1]) out.push(new RegExp(m[1], 'i'));
    }
  }
  return out;
}

/** A name the pattern matches, built from the pattern's own text (as a test would write one). */
function namesFor(re: RegExp): string[] {
  const base = re.source.replace(/^\^/, '').replace(/\$$/, '');
  const variants = [
    base.replace(/\\d\+?/g, '12').replace(/\\w\*/g, 'x').replace(/\.\*\??/g, 'abc').replace(/\[(\w)\w*\]/g, '$1').replace(/\[0-9\]\+?/g, '7').replace(/\\([.-])/g, '$1').replace(/\(\?:(\w[\w-]*)\|[^)]*\)/g, '$1').replace(/\?/g, ''),
  ];
  return variants.flatMap((v) => [v, v.toUpperCase(), `x${v}`]);
}

s('never rejects a name its regex matches (Debian whitelist and generated names)', () => {
  let matched = 0;
  for (const re of patterns()) {
    const suffix = requiredSuffix(re);
    for (const name of namesFor(re)) {
      if (!re.test(name)) continue;
      matched++;
      assert.ok(endsWithIgnoringCase(name, suffix), `${re} matches ${name} but the suffix ${JSON.stringify(suffix)} would skip it`);
    }
  }
  assert.ok(matched >= 8, `the generated names matched their patterns (${matched})`);
  // Random names from a small alphabet against short random patterns.
  let seed = 7;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const pieces = ['a', 'b', '.', '\\.', '-', '\\-', '\\d', '[ab]', '?', '*', '+', '(a|b)', '(?:a)', '{1,2}', '|', '.*', 'A', '1'];
  let checked = 0;
  for (let k = 0; k < 3000; k++) {
    let p = '';
    for (let n = 1 + rnd(6); n > 0; n--) p += pieces[rnd(pieces.length)];
    p += '$';
    let re: RegExp;
    try {
      re = new RegExp(p, 'i');
    } catch {
      continue;
    }
    const suffix = requiredSuffix(re);
    for (let t = 0; t < 30; t++) {
      let name = '';
      for (let n = rnd(8); n > 0; n--) name += 'abAB.-1'[rnd(7)];
      if (re.test(name)) {
        checked++;
        assert.ok(endsWithIgnoringCase(name, suffix), `/${p}/i matches ${JSON.stringify(name)} but the suffix ${JSON.stringify(suffix)} would skip it`);
      }
    }
  }
  assert.ok(checked > 1000, `random names matched random patterns often enough (${checked})`);
});

s.run();
