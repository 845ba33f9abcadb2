import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { LogTail } from '../../src/store/log-tail.js';
import type { ReplogEntry } from '../../src/store/record-codec.js';

const s = suite('store/log-tail');

function entries(from: number, to: number): ReplogEntry[] {
  const out: ReplogEntry[] = [];
  for (let seq = from; seq <= to; seq++) {
    out.push({ seq, kind: 'client', key: `192.0.2.${seq % 250}`, record: { firstSeenMs: seq, lastSeenMs: seq, lastCountedMs: 0, passes: {} }, originNode: 'a', atMs: seq });
  }
  return out;
}
const seqs = (xs: ReplogEntry[] | undefined): number[] | undefined => xs?.map((e) => e.seq);

s('serves a run of consecutive entries only when it reaches the last sequence in the database', () => {
  const t = new LogTail(100);
  assert.is(t.read(0, 10, 0), undefined, 'empty: the caller reads LMDB');
  t.committed(entries(1, 5));
  t.committed(entries(6, 8));
  assert.equal(seqs(t.read(0, 100, 8)), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(seqs(t.read(3, 2, 8)), [4, 5], 'limit');
  assert.equal(seqs(t.read(8, 10, 8)), [], 'nothing after the last');
  assert.equal(seqs(t.read(20, 10, 8)), [], 'a cursor past the end');
  assert.is(t.read(3, 10, 9), undefined, 'the database holds an entry the run lacks (another process wrote it)');
});

s('a gap restarts the run; cursors before the run go to the database', () => {
  const t = new LogTail(100);
  t.committed(entries(1, 5));
  t.committed(entries(8, 9));
  assert.equal(seqs(t.read(7, 10, 9)), [8, 9]);
  assert.is(t.read(6, 10, 9), undefined, 'seq 7 was not logged by this process');
  assert.is(t.read(2, 10, 9), undefined);
});

s('keeps at most its capacity, oldest dropped first', () => {
  const t = new LogTail(10);
  for (let i = 0; i < 50; i++) t.committed(entries(i * 7 + 1, i * 7 + 7));
  assert.is(t.read(339, 100, 350), undefined, 'seq 340 is no longer kept');
  assert.is(t.read(330, 100, 350), undefined, 'older than the 10 kept');
  assert.equal(seqs(t.read(340, 100, 350)), [341, 342, 343, 344, 345, 346, 347, 348, 349, 350]);
});

s('trimmed() forgets entries up to the trim point', () => {
  const t = new LogTail(100);
  t.committed(entries(1, 10));
  t.trimmed(4);
  assert.is(t.read(2, 10, 10), undefined, 'trimmed entries are not served');
  assert.equal(seqs(t.read(4, 10, 10)), [5, 6, 7, 8, 9, 10]);
  t.trimmed(10);
  assert.is(t.read(4, 10, 10), undefined, 'all trimmed: empty');
  t.committed(entries(11, 12));
  assert.equal(seqs(t.read(10, 10, 12)), [11, 12]);
});

s.run();
