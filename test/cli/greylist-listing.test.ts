// `greylist list|clients` paging: listUpTo reads past the store's page size and knows whether rows
// were left out; the stderr note says how many were shown and how to see more; the help names
// what purge removes.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { greylistCommand, listUpTo, truncationNote } from '../../src/cli/policy-commands.js';
import type { KeyedRecord, ListOptions } from '../../src/store/lmdb-greylist-store.js';

const s = suite('cli/greylist-listing');

/** A store listing of `n` sorted keys, capped per read like LmdbGreylistStore (which caps at 100,000). */
function fakeList(n: number, cap: number): { read: (o: ListOptions) => Promise<KeyedRecord<number>[]>; reads: ListOptions[] } {
  const keys = Array.from({ length: n }, (_, i) => `k${String(i).padStart(6, '0')}`);
  const reads: ListOptions[] = [];
  return {
    reads,
    read: (o) => {
      reads.push(o);
      const from = keys.filter((k) => (o.prefix === undefined || k.startsWith(o.prefix)) && (o.startAfter === undefined || k > o.startAfter));
      return Promise.resolve(from.slice(0, Math.min(o.limit ?? 1000, cap)).map((key, i) => ({ key, record: i })));
    },
  };
}

s('fewer rows than the limit, exactly the limit, one more than the limit', async () => {
  assert.equal((await listUpTo(fakeList(5, 100).read, { limit: 10 })).more, false);
  const exact = await listUpTo(fakeList(10, 100).read, { limit: 10 });
  assert.is(exact.rows.length, 10);
  assert.is(exact.more, false);
  const over = await listUpTo(fakeList(11, 100).read, { limit: 10 });
  assert.is(over.rows.length, 10);
  assert.is(over.more, true);
  assert.is(over.rows[9]!.key, 'k000009');
});

s('a limit above one read is served page by page, in key order', async () => {
  const f = fakeList(25_000, 10_000);
  const r = await listUpTo(f.read, { limit: 20_000 });
  assert.is(r.rows.length, 20_000);
  assert.is(r.more, true);
  assert.is(new Set(r.rows.map((x) => x.key)).size, 20_000);
  assert.is(r.rows[19_999]!.key, 'k019999');
  assert.ok(f.reads.length >= 3);
  const all = await listUpTo(fakeList(25_000, 10_000).read, { limit: 30_000 });
  assert.is(all.rows.length, 25_000);
  assert.is(all.more, false);
});

s('the note names what was shown, the total when known, and --limit', () => {
  assert.is(truncationNote('triplets', 100, 123, undefined), 'mxsentry: listed the first 100 triplets of 123; --limit N lists more, --prefix P narrows\n');
  assert.match(truncationNote('clients', 5, undefined, '192.0.2'), 'first 5 clients matching --prefix 192.0.2, and there are more; --limit N lists more');
});

s('the greylist help says what purge removes: max-age, the retry window for never-passed triplets, or --older-than', () => {
  const text = String(greylistCommand().describe);
  assert.match(text, /purge \([^)]*max-age[^)]*retry-window[^)]*--older-than[^)]*\)/);
});

s.run();
