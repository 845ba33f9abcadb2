// Tests of the byte-budget LRU: recency order, byte accounting, expired-first then LRU eviction,
// the bounded expired scan, oversized entries and resizing.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { LruBudget, type EvictReason } from '../../../src/dns/cache/lru-budget.js';
import { DnsError } from '../../../src/util/errors.js';
import { seededRandom } from '../../helpers/seeded-random.js';

interface V {
  id: string;
  dead: boolean;
}

function make(maxBytes: number, scan?: number): { lru: LruBudget<V>; evicted: [string, EvictReason][] } {
  const evicted: [string, EvictReason][] = [];
  const lru = new LruBudget<V>({
    maxBytes,
    isExpired: (v) => v.dead,
    onEvict: (k, _v, reason) => evicted.push([k, reason]),
    ...(scan === undefined ? {} : { expiredScanLimit: scan }),
  });
  return { lru, evicted };
}

const v = (id: string, dead = false): V => ({ id, dead });

const s = suite('dns/cache/lru-budget');

s('set/get/peek/delete keep size and bytes exact', () => {
  const { lru } = make(1000);
  lru.set('a', v('a'), 10);
  lru.set('b', v('b'), 20);
  assert.is(lru.size, 2);
  assert.is(lru.bytes, 30);
  assert.is(lru.get('a')?.id, 'a');
  assert.is(lru.peek('b')?.id, 'b');
  assert.is(lru.get('zz'), undefined);
  lru.set('a', v('a2'), 5);
  assert.is(lru.bytes, 25, 'replacement replaces the cost');
  assert.is(lru.peek('a')?.id, 'a2');
  assert.ok(lru.delete('a'));
  assert.not.ok(lru.delete('a'));
  assert.is(lru.size, 1);
  assert.is(lru.bytes, 20);
  lru.clear();
  assert.is(lru.size, 0);
  assert.is(lru.bytes, 0);
});

s('iteration is least recently used first; get promotes, peek does not', () => {
  const { lru } = make(1000);
  for (const k of ['a', 'b', 'c']) lru.set(k, v(k), 1);
  lru.get('a');
  lru.peek('b');
  assert.equal([...lru.keys()], ['b', 'c', 'a']);
  assert.equal([...lru].map(([k]) => k), ['b', 'c', 'a']);
  assert.equal([...lru.values()].map((x) => x.id), ['b', 'c', 'a']);
});

s('entry() looks without promoting; touch() promotes that entry, as get would', () => {
  const { lru, evicted } = make(3);
  for (const k of ['a', 'b', 'c']) lru.set(k, v(k), 1);
  const a = lru.entry('a');
  assert.is(a?.value.id, 'a');
  assert.is(lru.entry('zz'), undefined);
  assert.equal([...lru.keys()], ['a', 'b', 'c']);
  if (a) lru.touch(a);
  assert.equal([...lru.keys()], ['b', 'c', 'a']);
  const c = lru.entry('c');
  if (c) lru.touch(c);
  assert.equal([...lru.keys()], ['b', 'a', 'c']);
  // The least recently used by then goes first: b, not the touched a.
  lru.set('d', v('d'), 1);
  assert.equal(evicted, [['b', 'lru']]);
  assert.equal([...lru.keys()], ['a', 'c', 'd']);
  assert.is(lru.size, 3);
  assert.is(lru.bytes, 3);
});

s('over budget: the least recently used entry goes', () => {
  const { lru, evicted } = make(30);
  lru.set('a', v('a'), 10);
  lru.set('b', v('b'), 10);
  lru.set('c', v('c'), 10);
  lru.get('a');
  lru.set('d', v('d'), 10);
  assert.equal([...lru.keys()], ['c', 'a', 'd']);
  assert.equal(evicted, [['b', 'lru']]);
  assert.is(lru.bytes, 30);
});

s('expired entries go before live ones, even recently used ones', () => {
  const { lru, evicted } = make(30);
  lru.set('a', v('a'), 10);
  lru.set('b', v('b'), 10);
  lru.set('c', v('c', true), 10);
  lru.set('d', v('d'), 10);
  assert.equal([...lru.keys()], ['a', 'b', 'd']);
  assert.equal(evicted, [['c', 'expired']]);
});

s('an eviction pass drops every expired entry in its window, then LRU if still needed', () => {
  const { lru, evicted } = make(40);
  lru.set('x1', v('x1', true), 5);
  lru.set('a', v('a'), 10);
  lru.set('x2', v('x2', true), 5);
  lru.set('b', v('b'), 10);
  lru.set('c', v('c'), 10);
  // 40 used; adding 25 needs 25 freed: both expired (10) then a and b (LRU).
  lru.set('d', v('d'), 25);
  assert.equal([...lru.keys()], ['c', 'd']);
  assert.equal(evicted, [['x1', 'expired'], ['x2', 'expired'], ['a', 'lru'], ['b', 'lru']]);
  assert.is(lru.bytes, 35);
});

s('the expired scan is bounded: beyond the window plain LRU applies', () => {
  const { lru, evicted } = make(30, 2);
  lru.set('a', v('a'), 10);
  lru.set('b', v('b'), 10);
  lru.set('c', v('c', true), 10);
  lru.set('d', v('d'), 10);
  assert.equal(evicted, [['a', 'lru']]);
  assert.equal([...lru.keys()], ['b', 'c', 'd']);
});

s('an entry larger than the whole budget is refused and removes the old value', () => {
  const { lru } = make(30);
  lru.set('a', v('a'), 10);
  assert.not.ok(lru.set('a', v('big'), 31));
  assert.is(lru.peek('a'), undefined);
  assert.is(lru.bytes, 0);
  assert.ok(lru.set('b', v('b'), 30));
});

s('resize evicts down to the new budget; evictExpired sweeps the LRU window', () => {
  const { lru } = make(100);
  for (let i = 0; i < 10; i++) lru.set(`k${i}`, v(`k${i}`, i % 2 === 0), 10);
  assert.is(lru.evictExpired(4), 2, 'k0 and k2 among the first four');
  lru.resize(30);
  assert.ok(lru.bytes <= 30);
  assert.equal([...lru.keys()], ['k5', 'k7', 'k9'], 'expired k4, k6, k8 first, then LRU k1, k3');
  assert.throws(() => lru.resize(-1), (err: unknown) => err instanceof DnsError && err.code === 'DNS_ERR_CACHE_SIZE');
  assert.throws(() => make(Number.NaN), (err: unknown) => err instanceof DnsError && err.code === 'DNS_ERR_CACHE_SIZE');
});

s('bounded fill: the budget holds at every step and the newest entries survive', () => {
  const { lru } = make(10_000);
  for (let i = 0; i < 20_000; i++) {
    lru.set(`key-${i}`, v(`key-${i}`, i % 7 === 0), 50 + (i % 50));
    assert.ok(lru.bytes <= 10_000);
  }
  assert.ok(lru.has('key-19999'));
  assert.not.ok(lru.has('key-0'));
  let sum = 0;
  for (const x of lru.values()) sum += 50 + (Number(x.id.slice(4)) % 50);
  assert.is(sum, lru.bytes, 'accounting matches the entries held');
});

s('replacing an entry updates its bytes and value in place and makes it the most recent', () => {
  const { lru, evicted } = make(100);
  lru.set('a', v('a1'), 10);
  lru.set('b', v('b'), 10);
  lru.set('c', v('c'), 10);
  assert.ok(lru.set('a', v('a2'), 40));
  assert.is(lru.bytes, 60);
  assert.is(lru.peek('a')?.id, 'a2');
  assert.equal([...lru.keys()], ['b', 'c', 'a']);
  assert.ok(lru.set('c', v('c2'), 5), 'shrinking a replaced entry');
  assert.is(lru.bytes, 55);
  assert.not.ok(lru.set('b', v('b2'), 101), 'too large for the whole budget: the old value goes too');
  assert.not.ok(lru.has('b'));
  assert.is(lru.bytes, 45);
  assert.equal([...lru.keys()], ['a', 'c']);
  assert.equal(evicted, [], 'replacement and refusal are not evictions');
});

s('promotion keeps the list whole: head, middle, tail, single entry', () => {
  const { lru } = make(1000);
  lru.set('only', v('only'), 1);
  lru.get('only');
  assert.equal([...lru.keys()], ['only']);
  for (const k of ['a', 'b', 'c', 'd']) lru.set(k, v(k), 1);
  lru.get('c');
  lru.get('only');
  lru.get('d');
  assert.equal([...lru.keys()], ['a', 'b', 'c', 'only', 'd']);
  lru.delete('a');
  lru.delete('d');
  assert.equal([...lru.keys()], ['b', 'c', 'only']);
  assert.equal([...lru.entries()].reverse().map(([k]) => k), ['only', 'c', 'b']);
  lru.clear();
  assert.equal([...lru.keys()], []);
  lru.set('x', v('x'), 1);
  assert.equal([...lru.keys()], ['x'], 'usable after clear');
});

s('iterating while the container changes: the order of the start, removed entries skipped', () => {
  const { lru } = make(1000);
  for (const k of ['a', 'b', 'c', 'd', 'e']) lru.set(k, v(k), 1);
  const seen: string[] = [];
  for (const k of lru.keys()) {
    seen.push(k);
    if (k === 'a') {
      lru.delete('b');
      lru.get('c');
      lru.set('f', v('f'), 1);
    }
  }
  assert.equal(seen, ['a', 'c', 'd', 'e']);
  assert.equal([...lru.keys()], ['a', 'd', 'e', 'c', 'f']);
});

s('hot keys promoted and replaced many times among many entries stay consistent', () => {
  const { lru } = make(1_000_000);
  for (let i = 0; i < 5_000; i++) lru.set(`k${i}`, v(`k${i}`), 100);
  for (let round = 0; round < 20_000; round++) {
    const k = `k${round % 10}`;
    if (round % 2 === 0) lru.get(k);
    else lru.set(k, v(`${k}-${round}`), 100);
  }
  assert.is(lru.size, 5_000);
  assert.is(lru.bytes, 500_000);
  const keys = [...lru.keys()];
  assert.is(new Set(keys).size, 5_000, 'every entry once in the recency list');
  assert.equal(keys.slice(-10).sort(), Array.from({ length: 10 }, (_, i) => `k${i}`).sort(), 'the hot keys are the most recent');
  assert.is(lru.peek('k9')?.id, 'k9-19999');
});

s('sub-keys: entries of one key are separate, each removable and evictable on its own', () => {
  const { lru, evicted } = make(35);
  lru.set('n', v('n0'), 10);
  lru.set('n', v('n1'), 10, 1);
  lru.set('n', v('n-1'), 10, -1);
  assert.is(lru.size, 3);
  assert.is(lru.peek('n')?.id, 'n0');
  assert.is(lru.peek('n', 1)?.id, 'n1');
  assert.is(lru.peek('n', -1)?.id, 'n-1');
  assert.is(lru.peek('n', 2), undefined);
  assert.ok(lru.has('n', 1));
  // The key's first entry goes: the others stay reachable.
  assert.ok(lru.delete('n'));
  assert.is(lru.peek('n', 1)?.id, 'n1');
  assert.is(lru.peek('n', -1)?.id, 'n-1');
  assert.is(lru.size, 2);
  assert.is(lru.bytes, 20);
  // Replacing a sub-key's value keeps one entry.
  lru.set('n', v('n1b'), 12, 1);
  assert.is(lru.size, 2);
  assert.is(lru.bytes, 22);
  // Over budget: the least recently used entry (n-1) is evicted, not its key's other entries.
  lru.set('m', v('m'), 10);
  lru.set('n', v('n0b'), 5);
  assert.equal(evicted, [['n', 'lru']]);
  assert.is(lru.peek('n', -1), undefined);
  assert.is(lru.peek('n', 1)?.id, 'n1b');
  assert.is(lru.peek('n')?.id, 'n0b');
  assert.equal([...lru.values()].map((x) => x.id), ['n1b', 'm', 'n0b']);
  assert.is(lru.deleteWhere((x) => x.id.startsWith('n')), 2);
  assert.equal([...lru.keys()], ['m']);
  assert.is(lru.size, 1);
  assert.is(lru.bytes, 10);
});

s('sub-keys: random operations agree with a Map keyed by "key sub"', () => {
  const rnd = seededRandom(9);
  const { lru } = make(400);
  const model = new Map<string, V>();
  for (let i = 0; i < 20_000; i++) {
    const key = `k${Math.floor(rnd() * 12)}`;
    const sub = Math.floor(rnd() * 5) - 2;
    const op = rnd();
    const name = `${key} ${sub}`;
    if (op < 0.5) {
      const val = v(`${name}#${i}`);
      lru.set(key, val, 10, sub);
      model.delete(name);
      model.set(name, val);
      // Over budget the least recently used entries went: the model drops its oldest the same way.
      while (model.size * 10 > 400) model.delete(model.keys().next().value!);
    } else if (op < 0.8) {
      assert.is(lru.delete(key, sub), model.delete(name));
    } else {
      const got = lru.get(key, sub);
      const want = model.get(name);
      assert.is(got, want);
      if (want) {
        model.delete(name);
        model.set(name, want);
      }
    }
    assert.is(lru.size, model.size);
  }
  assert.equal([...lru.values()], [...model.values()]);
  assert.is(lru.bytes, model.size * 10);
});

s.run();
