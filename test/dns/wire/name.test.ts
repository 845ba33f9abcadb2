// Tests for src/dns/wire/name.ts: escaping, wire reading with compression pointers, label
// arithmetic and 0x20 randomisation.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  canonicalName,
  isSubdomain,
  labelCount,
  nameLabels,
  namesEqual,
  nameToWire,
  parentName,
  parseName,
  randomizeCase,
  readWireName,
  suffixName,
  wireLength,
} from '../../../src/dns/wire/name.js';
import { throwsCode } from '../../helpers/assert-error.js';
import { seededRandom } from '../../helpers/seeded-random.js';

const s = suite('dns/wire/name');

function wire(...parts: (number | string)[]): Buffer {
  const bytes: number[] = [];
  for (const p of parts) {
    if (typeof p === 'number') bytes.push(p);
    else for (const b of Buffer.from(p, 'latin1')) bytes.push(b);
  }
  return Buffer.from(bytes);
}

s('parseName makes absolute escaped names and keeps case', () => {
  assert.is(parseName('example.com'), 'example.com.');
  assert.is(parseName('Example.COM.'), 'Example.COM.');
  assert.is(parseName('.'), '.');
  assert.is(parseName('a\\.b.c'), 'a\\.b.c.');
  assert.is(parseName('\\065bc'), 'Abc.', '\\DDD of a printable byte is normalised to the character');
  assert.is(parseName('\\255x'), '\\255x.');
  assert.is(parseName('a\\ b'), 'a\\032b.', 'a space is always \\032');
  assert.is(parseName('back\\\\slash'), 'back\\\\slash.');
  assert.is(parseName('\\q.'), 'q.', '\\X quotes X');
  assert.is(parseName('café.fr'), 'caf\\195\\169.fr.', 'non-ASCII text becomes its UTF-8 bytes');
});

s('parseName rejects malformed names with DNS_ERR_BAD_NAME', () => {
  for (const bad of ['', 'a..b', '.a', '..', 'a\\', 'a\\25', 'a\\256', 'a\\12x']) {
    throwsCode(() => parseName(bad), 'DNS_ERR_BAD_NAME');
  }
  const label63 = 'a'.repeat(63);
  assert.is(parseName(label63), label63 + '.');
  throwsCode(() => parseName('a'.repeat(64)), 'DNS_ERR_BAD_NAME', /63/);
  // 4 labels of 63 = 4*64 + 1 = 257 wire bytes; 3*64 + 62 + 1 = 255 fits exactly.
  const max = [label63, label63, label63, 'b'.repeat(61)].join('.');
  assert.is(wireLength(parseName(max)), 255);
  throwsCode(() => parseName(max + 'b'), 'DNS_ERR_BAD_NAME', /255/);
  throwsCode(() => parseName([label63, label63, label63, label63].join('.')), 'DNS_ERR_BAD_NAME');
});

s('nameToWire and wireLength agree, escapes map to single bytes', () => {
  for (const n of ['.', 'com.', 'www.example.com.', 'a\\.b.c.', '\\255\\000.x.', 'back\\\\slash.']) {
    assert.is(nameToWire(n).length, wireLength(n), n);
  }
  assert.equal([...nameToWire('a\\.b.c.')], [3, 0x61, 0x2e, 0x62, 1, 0x63, 0]);
  assert.equal([...nameToWire('.')], [0]);
  assert.equal([...nameToWire('\\255.')], [1, 255, 0]);
});

s('wire -> readWireName -> nameToWire and parseName round-trip, plain and escaped labels alike, at every length', () => {
  const rnd = seededRandom(20261205);
  const int = (n: number): number => Math.floor(rnd() * n);
  for (let i = 0; i < 2000; i++) {
    const parts: number[] = [];
    let total = 1;
    const labels = 1 + int(8);
    for (let l = 0; l < labels; l++) {
      const len = 1 + int(i % 3 === 0 ? 63 : 12);
      if (total + len + 1 > 255) break;
      parts.push(len);
      // Mostly letters, digits and '-'; every fourth name may hold any byte (escapes, '.', '\\').
      for (let k = 0; k < len; k++) parts.push(i % 4 === 0 ? int(256) : 'abcXYZ019-_'.charCodeAt(int(11)));
      total += len + 1;
    }
    if (parts.length === 0) continue;
    const bytes = Buffer.from([...parts, 0]);
    const name = readWireName(bytes, 0).name;
    assert.equal([...nameToWire(name)], [...bytes], name);
    assert.is(wireLength(name), bytes.length);
    // A Name parses to itself, with or without its trailing dot (plain names skip the label arrays).
    assert.is(parseName(name), name);
    assert.is(parseName(name.slice(0, -1)), name);
  }
  const label63 = 'a'.repeat(63);
  assert.is(nameToWire(`${label63}.`).length, 65);
  throwsCode(() => nameToWire(`${label63}a.`), 'DNS_ERR_BAD_NAME', /63/);
  throwsCode(() => nameToWire('a..b.'), 'DNS_ERR_BAD_NAME', /empty label/);
  throwsCode(() => nameToWire(`${label63}.`.repeat(4)), 'DNS_ERR_BAD_NAME', /255/);
  assert.equal([...nameToWire('a.b')], [1, 0x61, 1, 0x62, 0], 'the trailing dot is optional');
});

s('readWireName: a label containing a dot stays distinct from two labels', () => {
  const oneLabel = readWireName(wire(11, 'www.example', 3, 'com', 0), 0);
  const twoLabels = readWireName(wire(3, 'www', 7, 'example', 3, 'com', 0), 0);
  assert.is(oneLabel.name, 'www\\.example.com.');
  assert.is(twoLabels.name, 'www.example.com.');
  assert.not.ok(namesEqual(oneLabel.name, twoLabels.name));
  assert.not.ok(isSubdomain(oneLabel.name, 'example.com.'));
  assert.ok(isSubdomain(twoLabels.name, 'example.com.'));
  assert.equal(nameLabels(oneLabel.name), ['www\\.example', 'com']);
  assert.equal([...nameToWire(oneLabel.name)], [...wire(11, 'www.example', 3, 'com', 0)]);
});

s('readWireName: high bytes become \\DDD and round-trip to the same wire', () => {
  const buf = wire(2, 0xff, 0x80, 1, 0x20, 1, 0x5c, 0);
  const r = readWireName(buf, 0);
  assert.is(r.name, '\\255\\128.\\032.\\\\.');
  assert.is(r.end, buf.length);
  assert.equal([...nameToWire(r.name)], [...buf]);
  assert.is(readWireName(wire(0), 0).name, '.');
});

s('readWireName follows backward pointers and reports the end after the first pointer', () => {
  // 0: "example.com." ; 13: "www" + pointer to 0 ; 19: pointer to 13
  const buf = wire(7, 'example', 3, 'com', 0, 3, 'www', 0xc0, 0, 0xc0, 13);
  assert.is(readWireName(buf, 0).name, 'example.com.');
  assert.equal(readWireName(buf, 13), { name: 'www.example.com.', end: 19 });
  assert.equal(readWireName(buf, 19), { name: 'www.example.com.', end: 21 });
  throwsCode(() => readWireName(buf, 13, { allowPointers: false }), 'DNS_ERR_FORMERR', /pointer/);
});

s('readWireName rejects loops, forward pointers and self pointers', () => {
  throwsCode(() => readWireName(wire(0xc0, 0), 0), 'DNS_ERR_FORMERR', /backwards/);
  throwsCode(() => readWireName(wire(0xc0, 2, 0), 0), 'DNS_ERR_FORMERR', /backwards/);
  // 0: "a" then pointer to 0: a loop through a label.
  throwsCode(() => readWireName(wire(1, 'a', 0xc0, 0), 0), 'DNS_ERR_FORMERR', /backwards/);
  // Two pointers bouncing: 0 -> ptr to 2 (forward) is rejected even if 2 points back.
  throwsCode(() => readWireName(wire(0xc0, 2, 0xc0, 0), 0), 'DNS_ERR_FORMERR');
  throwsCode(() => readWireName(wire(0xc0, 2, 0xc0, 0), 2), 'DNS_ERR_FORMERR');
});

s('readWireName with a pointerFloor rejects pointers below it (a message header holds no names)', () => {
  // 0..3: four bytes standing for a header, the last one 0 (the root name if read as a name);
  // 4: "a." ; 7: "b" + pointer to 4 ; 11: "c" + pointer to 3.
  const buf = wire(1, 2, 3, 0, 1, 'a', 0, 1, 'b', 0xc0, 4, 1, 'c', 0xc0, 3);
  assert.is(readWireName(buf, 11).name, 'c.', 'without a floor the pointer is followed');
  throwsCode(() => readWireName(buf, 11, { pointerFloor: 4 }), 'DNS_ERR_FORMERR', /into the header/);
  assert.is(readWireName(buf, 7, { pointerFloor: 4 }).name, 'b.a.', 'a pointer to the floor itself is fine');
  throwsCode(() => readWireName(buf, 7, { pointerFloor: 5 }), 'DNS_ERR_FORMERR', /into the header/);
});

s('readWireName rejects bad label types, truncation and over-long names', () => {
  throwsCode(() => readWireName(wire(0x41, 0), 0), 'DNS_ERR_FORMERR', /label type 0x40/);
  throwsCode(() => readWireName(wire(0x81, 0), 0), 'DNS_ERR_FORMERR', /label type 0x80/);
  throwsCode(() => readWireName(wire(3, 'ab'), 0), 'DNS_ERR_FORMERR', /past the end/);
  throwsCode(() => readWireName(wire(3, 'abc'), 0), 'DNS_ERR_FORMERR', /past the end/);
  throwsCode(() => readWireName(wire(0xc0), 0), 'DNS_ERR_FORMERR', /truncated/);
  const labels: (number | string)[] = [];
  for (let i = 0; i < 5; i++) labels.push(63, 'x'.repeat(63));
  throwsCode(() => readWireName(wire(...labels, 0), 0), 'DNS_ERR_FORMERR', /255/);
  // 255 exactly is fine: 3*64 + 62 + 1.
  const ok: (number | string)[] = [63, 'x'.repeat(63), 63, 'x'.repeat(63), 63, 'x'.repeat(63), 61, 'y'.repeat(61), 0];
  assert.is(wireLength(readWireName(wire(...ok), 0).name), 255);
  // A name assembled through pointers is capped at 255 too.
  const base: (number | string)[] = [63, 'x'.repeat(63), 63, 'x'.repeat(63), 63, 'x'.repeat(63), 0];
  const far = wire(...base, 63, 'z'.repeat(63), 0xc0, 0);
  throwsCode(() => readWireName(far, 193), 'DNS_ERR_FORMERR', /255/);
});

s('nameLabels, labelCount, parentName, suffixName', () => {
  assert.equal(nameLabels('.'), []);
  assert.equal(nameLabels('a.b.c.'), ['a', 'b', 'c']);
  assert.equal(nameLabels('a\\.b.c.'), ['a\\.b', 'c']);
  assert.equal(nameLabels('a\\\\.b.'), ['a\\\\', 'b']);
  assert.equal(nameLabels('\\046.x.'), ['\\046', 'x']);
  assert.is(labelCount('.'), 0);
  assert.is(labelCount('a\\.b.c.'), 2);
  assert.is(parentName('.'), null);
  assert.is(parentName('com.'), '.');
  assert.is(parentName('a\\.b.c.'), 'c.');
  assert.is(parentName('www.example.com.'), 'example.com.');
  assert.is(suffixName('a.b.c.', 2), 'b.c.');
  assert.is(suffixName('a.b.c.', 0), '.');
  assert.is(suffixName('a.b.c.', 3), 'a.b.c.');
  assert.is(suffixName('a.b.c.', 9), 'a.b.c.');
  assert.is(suffixName('x.a\\.b.c.', 2), 'a\\.b.c.');
});

s('isSubdomain is label-wise and case-insensitive', () => {
  assert.ok(isSubdomain('example.com.', 'example.com.'));
  assert.ok(isSubdomain('WWW.Example.COM.', 'example.com.'));
  assert.ok(isSubdomain('a.b.example.com.', 'EXAMPLE.com.'));
  assert.not.ok(isSubdomain('xexample.com.', 'example.com.'));
  assert.not.ok(isSubdomain('com.', 'example.com.'));
  assert.not.ok(isSubdomain('a\\.example.com.', 'example.com.'));
  assert.ok(isSubdomain('a\\\\.example.com.', 'example.com.'), 'an escaped backslash before a real dot');
  assert.ok(isSubdomain('anything.at.all.', '.'));
  assert.ok(isSubdomain('.', '.'));
  assert.not.ok(isSubdomain('.', 'com.'));
});

s('canonicalName folds ASCII only, escapes untouched; namesEqual', () => {
  assert.is(canonicalName('WwW.ExAmPlE.\\255\\.A.'), 'www.example.\\255\\.a.');
  assert.ok(namesEqual('Example.COM.', 'example.com.'));
  assert.not.ok(namesEqual('example.com.', 'example.org.'));
});

s('randomizeCase keeps the name modulo case, varies letters, keeps escapes', () => {
  const name = 'abcdefghijklmnopqrstuvwxyz.abcdefghijklmn.\\255\\.x.';
  const seen = new Set<string>();
  for (let i = 0; i < 20; i++) {
    const r = randomizeCase(name);
    assert.is(canonicalName(r), canonicalName(name));
    assert.ok(r.includes('\\255\\.'), 'escapes kept');
    seen.add(r);
  }
  // 41 letters: 20 identical draws has probability 2^-780.
  assert.ok(seen.size > 1);
  const r = randomizeCase(name);
  assert.ok(/[A-Z]/.test(r) && /[a-z]/.test(r), 'both cases appear (fails with probability 2^-40)');
  assert.is(randomizeCase('.'), '.');
});

s('randomizeCase: non-ASCII characters and every non-letter come back unchanged', () => {
  // A name with a character above 0x7f (not from parseName, which escapes such bytes) takes the
  // slow path; digits, hyphens, escapes and dots never change case.
  for (const name of ['caf\u00e9.example.', 'a-1_b.c0m.', '\\046\\.\\\\.x.', `${'ab.'.repeat(400)}`]) {
    const r = randomizeCase(name);
    assert.is(r.length, name.length);
    for (let i = 0; i < name.length; i++) {
      const c = name[i]!;
      if (/[a-z]/i.test(c)) assert.is(r[i]!.toLowerCase(), c.toLowerCase());
      else assert.is(r[i], c, `position ${i} of ${name}`);
    }
  }
});

s.run();
