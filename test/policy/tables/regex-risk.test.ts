// Tests for regex-risk.ts: repeated groups that hold an unbounded repetition are found; the
// patterns of Debian's postgrey whitelist_clients (polynomial at worst) are not.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { nestedRepetition } from '../../../src/policy/tables/regex-risk.js';

const s = suite('policy/tables/regex-risk');

s('nested repetitions are found, with the part that repeats', () => {
  const risky: Array<[string, string]> = [
    ['^(a+)+$', '(a+)+'],
    ['^(.*\\.)*example\\.com$', '(.*\\.)*'],
    ['^(?:\\w+\\.?)+example$', '(?:\\w+\\.?)+'],
    ['^((ab)*c)+$', '((ab)*c)+'],
    ['^(x(a+))*$', '(x(a+))*'],
    ['^(a+){2,}$', '(a+){2,}'],
    ['^(a+)+?$', '(a+)+?'],
    ['^(a{1,100}){2}$', '(a{1,100}){2}'],
    ['^(?:[a-z]+-)+mx\\.example$', '(?:[a-z]+-)+'],
  ];
  for (const [src, part] of risky) {
    assert.is(nestedRepetition(src), part, src);
    // The finding is real: the pattern compiles (the check reads valid patterns).
    assert.ok(new RegExp(src, 'i'));
  }
});

s('single repetitions, optional groups, classes and escapes are not', () => {
  const fine = [
    '^ms-smtp.*\\.rr\\.com$',
    '^lake.*mta.*\\.cox\\.net$',
    '^(?:smtp\\w*|postfix)[0-9]+-g[0-9]+\\.free\\.fr$',
    '^(.*\\.)?yahoo\\.com$',
    '^(mail|smtp)\\d*\\.example\\.com$',
    '^[(+*)]+\\.example$',
    '^\\(a+\\)+$',
    '^(a{2,3})+$',
    '^(a)+$',
    '^x{2}\\{+$',
    '^(?:a+)?(?:b*)?$',
  ];
  for (const src of fine) assert.is(nestedRepetition(src), undefined, src);
});

s.run();
