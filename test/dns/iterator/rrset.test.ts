// groupRRsets: records of one owner (case-insensitively), type and class form one RRset with the
// smallest TTL and no duplicate rdata, in first-seen order; a short section is grouped by a scan,
// a long one by a Map, and both give the same sets.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { groupRRsets } from '../../../src/dns/iterator/rrset.js';
import { RRClass, RRType, type ResourceRecord } from '../../../src/dns/wire/types.js';

const s = suite('dns/iterator/rrset');

function a(name: string, last: number, ttl: number, cls: number = RRClass.IN): ResourceRecord {
  return { name, type: RRType.A, class: cls, ttl, rdata: Buffer.from([192, 0, 2, last]) };
}

s('a short section: owners grouped case-insensitively, smallest TTL, duplicates dropped, first-seen order', () => {
  const sets = groupRRsets([
    a('www.Example.', 1, 300),
    { name: 'www.example.', type: RRType.AAAA, class: RRClass.IN, ttl: 60, rdata: Buffer.alloc(16) },
    a('WWW.example.', 2, 100),
    a('www.example.', 1, 200),
    a('www.example.', 3, 50, RRClass.CH),
    a('mail.example.', 4, 30),
  ]);
  assert.equal(
    sets.map((set) => [set.name, set.type, set.class, set.ttl, set.rdatas.map((d) => d[3])]),
    [
      ['www.Example.', RRType.A, RRClass.IN, 100, [1, 2]],
      ['www.example.', RRType.AAAA, RRClass.IN, 60, [0]],
      ['www.example.', RRType.A, RRClass.CH, 50, [3]],
      ['mail.example.', RRType.A, RRClass.IN, 30, [4]],
    ],
  );
});

s('a long section is grouped as a short one would be', () => {
  // 40 records over 3 owners written in mixed case, with repeats: past the scan limit of 16.
  const owners = ['a.example.', 'A.EXAMPLE.', 'b.example.', 'B.example.', 'c.example.'];
  const records = Array.from({ length: 40 }, (_, i) => a(owners[i % owners.length]!, i % 7, 1000 - i));
  const grouped = groupRRsets(records);
  // The same records in chunks of at most 16 (the scan path), merged by hand.
  const expected = new Map<string, { name: string; ttl: number; rdatas: number[] }>();
  for (const rr of records) {
    const key = rr.name.toLowerCase();
    const set = expected.get(key) ?? { name: rr.name, ttl: rr.ttl, rdatas: [] };
    set.ttl = Math.min(set.ttl, rr.ttl);
    if (!set.rdatas.includes(rr.rdata[3]!)) set.rdatas.push(rr.rdata[3]!);
    expected.set(key, set);
  }
  assert.equal(grouped.map((set) => ({ name: set.name, ttl: set.ttl, rdatas: set.rdatas.map((d) => d[3]) })), [...expected.values()]);
  assert.equal(groupRRsets(records.slice(0, 16)).length, 3);
});

s.run();
