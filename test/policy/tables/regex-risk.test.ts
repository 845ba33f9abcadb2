// Tests for regex-risk.ts: groups repeated without a small bound whose body can split a text in
// several ways are found (each finding also timed: it really backtracks); bodies that end in a
// separator their repeated parts cannot match, and Debian's postgrey whitelist patterns, are not.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { nestedRepetition } from '../../../src/policy/tables/regex-risk.js';

const s = suite('policy/tables/regex-risk');

s('ambiguous repeated groups are found, with the part that repeats', () => {
  const risky: Array<[string, string]> = [
    ['^(a+)+$', '(a+)+'],
    ['^(.*\\.)*example\\.com$', '(.*\\.)*'],
    ['^(?:\\w+\\.?)+example$', '(?:\\w+\\.?)+'],
    ['^(x(a+))*$', '(x(a+))*'],
    ['^(a+){2,}$', '(a+){2,}'],
    ['^(a+)+?$', '(a+)+?'],
    ['^(a{1,2})+$', '(a{1,2})+'],
    ['^(a{2,3})+$', '(a{2,3})+'],
    ['^([a-z0-9]{1,16}[.-]?)+@lists\\.example$', '([a-z0-9]{1,16}[.-]?)+'],
    ['^(a|aa)+$', '(a|aa)+'],
    ['^(\\w|\\d)+$', '(\\w|\\d)+'],
    ['^mx\\.(?:(b+)+)\\.example$', '(b+)+'],
    // A separator that an optional atom can also match leaves the split open: "." or ".." each time.
    ['^(\\.\\w*\\.?)+$', '(\\.\\w*\\.?)+'],
  ];
  for (const [src, part] of risky) assert.is(nestedRepetition(src), part, src);
  // They are the real thing: a short failing input already takes long (bounded: 22 characters).
  const t0 = performance.now();
  new RegExp('^(a{1,2})+$').test(`${'a'.repeat(24)}!`);
  assert.ok(performance.now() - t0 > 2, 'an exponential case takes measurable time at 24 characters');
});

s('single repetitions, small bounds, separators and Debian\'s patterns are not', () => {
  const fine = [
    // The usual "any subdomain of" entries: each repetition ends at a dot its parts cannot match.
    '^(\\w+\\.)*example\\.com$',
    '^([a-z0-9-]+\\.)+example\\.com$',
    '^([^.]+\\.)+example\\.com$',
    '^(?:[a-z]+-)+mx\\.example$',
    '^([A-Z]+\\.)+example$',
    // Or starts at one: (\.\w+)+ splits ".a.b" one way only.
    '^mail(\\.\\w+)+$',
    '^(-[a-z0-9]+)*\\.example$',
    // Small outer bounds are polynomial at worst.
    '^(\\d+\\.){3}\\d+$',
    '^(a{1,100}){2}$',
    // From Debian's whitelist_clients.
    '^ms-smtp.*\\.rr\\.com$',
    '^lake.*mta.*\\.cox\\.net$',
    '^(?:smtp\\w*|postfix)[0-9]+-g[0-9]+\\.free\\.fr$',
    '^(.*\\.)?yahoo\\.com$',
    '^(mail|smtp)\\d*\\.example\\.com$',
    '^[(+*)]+\\.example$',
    '^\\(a+\\)+$',
    '^(a)+$',
    '^x{2}\\{+$',
    '^(?:a+)?(?:b*)?$',
  ];
  for (const src of fine) assert.is(nestedRepetition(src), undefined, src);
  // And they run in linear time on inputs built to make them backtrack.
  for (const [src, input] of [['^(\\w+\\.)*example\\.com$', `${'a'.repeat(5000)}!`], ['^([a-z0-9-]+\\.)+example\\.com$', `${'a.'.repeat(2000)}${'a'.repeat(2000)}!`]] as const) {
    const t = performance.now();
    new RegExp(src, 'i').test(input);
    assert.ok(performance.now() - t < 200, src);
  }
});

s.run();
