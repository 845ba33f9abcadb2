// Tests for the postscreen dnsbl_sites parser: accepted forms, filters, weights, precise errors.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { filterMatches, parseDnsListSpec, parseDnsListSpecs } from '../../src/policy/dns-list-spec.js';
import { PolicyError } from '../../src/util/errors.js';

const s = suite('policy/dns-list-spec');

s('plain zone: no filter, weight 1, lower case, trailing dot dropped', () => {
  const spec = parseDnsListSpec(' Zen.Spamhaus.ORG. ');
  assert.is(spec.zone, 'zen.spamhaus.org');
  assert.is(spec.filter, null);
  assert.is(spec.weight, 1);
  assert.is(spec.text, 'Zen.Spamhaus.ORG.');
  assert.is(spec.name, 'zen.spamhaus.org');
  assert.ok(filterMatches(spec, [127, 0, 0, 99]));
});

const table: [string, number[][], number[][], number][] = [
  // spec, answers that match, answers that do not, weight
  ['bl.example.org=127.0.0.2', [[127, 0, 0, 2]], [[127, 0, 0, 3], [127, 0, 1, 2]], 1],
  ['bl.example.org=127.0.0.[2..11]', [[127, 0, 0, 2], [127, 0, 0, 11], [127, 0, 0, 7]], [[127, 0, 0, 1], [127, 0, 0, 12]], 1],
  ['list.dnswl.org=127.0.[0..255].[2;4;6]', [[127, 0, 0, 2], [127, 0, 255, 6], [127, 0, 9, 4]], [[127, 0, 9, 3], [127, 1, 0, 2]], 1],
  ['bl.example.org*3', [[127, 0, 0, 2], [127, 9, 9, 9]], [], 3],
  ['bl.example.org=127.0.0.[2..11]*3', [[127, 0, 0, 5]], [[127, 0, 0, 12]], 3],
  ['list.dnswl.org=127.0.[0..255].[1..3]*-2', [[127, 0, 5, 3]], [[127, 0, 5, 0]], -2],
  ['bl.example.org=127.0.0.[1;3..5;10]', [[127, 0, 0, 1], [127, 0, 0, 4], [127, 0, 0, 10]], [[127, 0, 0, 2], [127, 0, 0, 6]], 1],
  ['bl.example.org*+4', [[127, 0, 0, 2]], [], 4],
];
for (const [text, yes, no, weight] of table) {
  s(`parses ${text}`, () => {
    const spec = parseDnsListSpec(text);
    assert.is(spec.weight, weight);
    for (const o of yes) assert.ok(filterMatches(spec, o), `${o.join('.')} should match`);
    for (const o of no) assert.not.ok(filterMatches(spec, o), `${o.join('.')} should not match`);
  });
}

s('name keeps the filter, drops the weight', () => {
  assert.is(parseDnsListSpec('list.dnswl.org=127.0.[0..255].[2;3]*-2').name, 'list.dnswl.org=127.0.[0..255].[2;3]');
});

const bad: [string, RegExp][] = [
  ['bl.example.org*0', /weight 0 makes the entry count for nothing/],
  ['', /empty entry/],
  ['zen.spamhaus.org=', /empty filter/],
  ['zen.spamhaus.org=127.0.0', /four octets/],
  ['zen.spamhaus.org=127.0.0.2.1', /four octets/],
  ['zen.spamhaus.org=127.0.0.256', /larger than 255/],
  ['zen.spamhaus.org=127.0.0.[11..2]', /runs backwards/],
  ['zen.spamhaus.org=127.0.0.[]', /empty pattern/],
  ['zen.spamhaus.org=127.0.0.[2,3]', /not a number or a lo..hi range/],
  ['zen.spamhaus.org=127.0.0.x', /neither a number nor/],
  ['zen.spamhaus.org=127.0.0.[2..3', /unbalanced/],
  ['zen.spamhaus.org=127.0.[[1]].2', /unbalanced/],
  ['zen.spamhaus.org=10.0.0.2', /can never match/],
  ['zen.spamhaus.org*x', /weight "x" is not an integer/],
  ['zen.spamhaus.org*1.5', /not an integer/],
  ['zen.spamhaus.org*', /not an integer/],
  ['=127.0.0.2', /missing zone/],
  ['localhost', /at least two labels/],
  ['zen..spamhaus.org', /invalid label ""/],
  ['zen.spam haus.org', /whitespace/],
  // A postscreen_dnsbl_sites value pasted as one entry: refused with how to write it.
  ['zen.spamhaus.org*3,bl.spamcop.net*2', /contains ",": one list per entry \(postscreen's "a, b" is two dnsbl lines/],
  ['zen.spamhaus.org=127.0.0.[2..11],bl.spamcop.net', /contains ","/],
  ['zen.spamhaus.org*3 bl.spamcop.net*2', /contains whitespace: one list per entry/],
  ['-bad.example.org', /invalid label "-bad"/],
];
for (const [text, re] of bad) {
  s(`rejects ${JSON.stringify(text)}`, () => {
    try {
      parseDnsListSpec(text);
      assert.unreachable('should throw');
    } catch (err) {
      assert.instance(err, PolicyError);
      assert.is((err as PolicyError).code, 'POLICY_ERR_BAD_LIST_SPEC');
      assert.match((err as Error).message, re);
      if (text.trim() !== '') assert.ok((err as Error).message.includes(text.trim()), 'names the spec');
    }
  });
}

s('parseDnsListSpecs parses an array and throws on the first bad entry', () => {
  assert.equal(parseDnsListSpecs(['a.example.org', 'b.example.org*2']).map((x) => x.weight), [1, 2]);
  assert.throws(() => parseDnsListSpecs(['a.example.org', 'b.example.org=1.2.3']), /b\.example\.org=1\.2\.3/);
});

s.run();
