// Tests of the packet cache: hits patch ID, RD/CD, qname case and TTLs; misses for size, expiry and
// a different EDNS/DO/CD key; what is not stored; the near-expiry hook; flushes and the budget.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { PacketCache, type PrefetchQuestion } from '../../../src/dns/cache/packet-cache.js';
import { decodeMessage, encodeMessage } from '../../../src/dns/wire/message.js';
import { readQueryKey } from '../../../src/dns/wire/query-key.js';
import type { Edns, Message, QueryKey, ResourceRecord } from '../../../src/dns/wire/types.js';
import { ManualClock } from '../../../src/util/clock.js';

const EDNS: Edns = { udpSize: 1232, version: 0, dnssecOk: false, options: Buffer.alloc(0) };

function flags(over: Partial<Message['flags']> = {}): Message['flags'] {
  return { qr: false, opcode: 0, aa: false, tc: false, rd: true, ra: false, z: false, ad: false, cd: false, ...over };
}

interface QOpts {
  id?: number;
  rd?: boolean;
  cd?: boolean;
  edns?: Edns | null;
  type?: number;
}

/** A raw client query and its key, as the server would get them. */
function query(name: string, o: QOpts = {}): { raw: Buffer; key: QueryKey } {
  const msg: Message = {
    id: o.id ?? 0x1234,
    flags: flags({ rd: o.rd ?? true, cd: o.cd ?? false }),
    rcode: 0,
    questions: [{ name, type: o.type ?? 1, class: 1 }],
    answers: [],
    authorities: [],
    additionals: [],
    edns: o.edns === undefined ? null : o.edns,
  };
  const raw = encodeMessage(msg).bytes;
  const key = readQueryKey(raw);
  if (key === null) throw new Error(`test query for ${name} not readable`);
  return { raw, key };
}

function a(name: string, ttl: number, last: number): ResourceRecord {
  return { name, type: 1, class: 1, ttl, rdata: Buffer.from([192, 0, 2, last]) };
}

function response(name: string, o: { rcode?: number; answers?: ResourceRecord[]; edns?: Edns | null; type?: number; tc?: boolean } = {}): Message {
  return {
    id: 777,
    flags: flags({ qr: true, ra: true, tc: o.tc ?? false }),
    rcode: o.rcode ?? 0,
    questions: [{ name, type: o.type ?? 1, class: 1 }],
    answers: o.answers ?? [a(name, 300, 1), a(name, 600, 2)],
    authorities: [],
    additionals: [],
    edns: o.edns === undefined ? null : o.edns,
  };
}

const s = suite('dns/cache/packet-cache');

s('hit: client ID, qname case, RD bit and TTLs decremented by elapsed seconds', () => {
  const clock = new ManualClock();
  const cache = new PacketCache({ clock, maxBytes: 100_000 });
  const stored = query('www.example.com.');
  cache.store(stored.key, response('www.example.com.'));
  assert.is(cache.stats().entries, 1);

  clock.advanceMs(100_400);
  const client = query('WwW.ExAmPlE.cOm.', { id: 0xbeef, rd: false });
  const out = cache.answer(client.raw, client.key, 512);
  assert.ok(out);
  const m = decodeMessage(out);
  assert.is(m.id, 0xbeef);
  assert.is(m.flags.rd, false, 'RD copied from the query');
  assert.is(m.flags.qr, true);
  assert.is(m.flags.ra, true);
  assert.is(m.questions[0]?.name, 'WwW.ExAmPlE.cOm.', 'client case echoed (0x20)');
  // The first hit starts the RRset one record later (rrset-roundrobin); each TTL stays with its record.
  assert.equal(m.answers.map((r) => r.ttl), [500, 200]);
  assert.equal(m.answers.map((r) => r.rdata[3]), [2, 1]);

  const again = query('www.example.com.', { id: 1, rd: true });
  const m2 = decodeMessage(cache.answer(again.raw, again.key, 512) as Buffer);
  assert.is(m2.flags.rd, true);
  assert.is(m2.id, 1);
  assert.equal(cache.stats().hits, 2);
});

s('storeAndAnswer: the fresh answer is the direct encoding of the response, stored once, not counted as a hit', () => {
  const clock = new ManualClock();
  const cache = new PacketCache({ clock, maxBytes: 100_000 });
  const client = query('WwW.ExAmPlE.cOm.', { id: 0xbeef, rd: true, edns: EDNS });
  const res: Message = { ...response('WwW.ExAmPlE.cOm.', { edns: EDNS }), id: 0xbeef, flags: flags({ qr: true, ra: true, rd: true }) };
  const out = cache.storeAndAnswer(client.raw, client.key, res, 1232);
  assert.ok(out);
  assert.equal(out, encodeMessage(res).bytes, 'byte for byte what the server encoded itself: ID, flags, case, record order');
  assert.equal(cache.stats(), { entries: 1, bytes: cache.stats().bytes, maxBytes: 100_000, hits: 0, misses: 0 });
  // The next client is a hit on the stored packet (rotated, as every hit).
  const next = query('www.example.com.', { id: 7, edns: EDNS });
  const m = decodeMessage(cache.answer(next.raw, next.key, 1232) as Buffer);
  assert.is(m.id, 7);
  assert.equal(m.answers.map((r) => r.rdata[3]), [2, 1]);
  assert.is(cache.stats().hits, 1);
});

s('storeAndAnswer: null when larger than the client takes (stored all the same) or not storable', () => {
  const clock = new ManualClock();
  const cache = new PacketCache({ clock, maxBytes: 100_000 });
  const many = Array.from({ length: 40 }, (_, i) => a('big.example.', 300, i));
  const big = query('big.example.');
  assert.is(cache.storeAndAnswer(big.raw, big.key, response('big.example.', { answers: many }), 512), null, 'too big for 512 bytes');
  assert.is(cache.stats().entries, 1, 'stored: a TCP or EDNS client gets it from the cache');
  const fail = query('fail.example.');
  assert.is(cache.storeAndAnswer(fail.raw, fail.key, response('fail.example.', { rcode: 2 }), 512), null, 'SERVFAIL is not stored');
  assert.is(cache.stats().entries, 1);
});

s('the stored bytes are never modified by answering', () => {
  const clock = new ManualClock();
  const cache = new PacketCache({ clock, maxBytes: 100_000 });
  cache.store(query('a.example.').key, response('a.example.'));
  clock.advanceSec(10);
  const c = query('A.EXAMPLE.', { id: 9 });
  cache.answer(c.raw, c.key, 512);
  const plain = query('a.example.', { id: 10 });
  const m = decodeMessage(cache.answer(plain.raw, plain.key, 512) as Buffer);
  assert.is(m.questions[0]?.name, 'a.example.');
  assert.equal(m.answers.map((r) => r.ttl), [290, 590], 'the second hit: the stored order again');
});

s('rrset-roundrobin: each hit starts every answer RRset one record later; chains, names in rdata and the other sections stay intact', () => {
  const wireName = (n: string): Buffer => Buffer.concat([...n.split('.').filter(Boolean).map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
  const mx = (owner: string, pref: number, target: string): ResourceRecord => ({ name: owner, type: 15, class: 1, ttl: 300, rdata: Buffer.concat([Buffer.from([0, pref]), wireName(target)]) });
  const cache = new PacketCache({ clock: new ManualClock(), maxBytes: 100_000 });
  // A CNAME, then three A records of its target (owner compressed to the CNAME's data).
  const chain: ResourceRecord[] = [{ name: 'alias.example.', type: 5, class: 1, ttl: 300, rdata: wireName('www.example.') }, a('www.example.', 300, 1), a('www.example.', 300, 2), a('www.example.', 300, 3)];
  cache.store(query('alias.example.').key, response('alias.example.', { answers: chain }));
  const seen: number[][] = [];
  for (let i = 0; i < 4; i++) {
    const q = query('alias.example.', { id: i });
    const m = decodeMessage(cache.answer(q.raw, q.key, 512) as Buffer);
    assert.equal(m.answers[0], { ...chain[0], name: 'alias.example.' }, 'the CNAME stays first');
    assert.ok(m.answers.slice(1).every((r) => r.name === 'www.example.' && r.type === 1));
    seen.push(m.answers.slice(1).map((r) => r.rdata[3] as number));
  }
  assert.equal(seen, [[2, 3, 1], [3, 1, 2], [1, 2, 3], [2, 3, 1]]);

  // MX records whose names share suffixes with each other, and an authority section after them.
  const mxs = [mx('example.', 10, 'mx1.mail.example.'), mx('example.', 20, 'mx2.mail.example.'), mx('example.', 30, 'mail.example.')];
  const ns: ResourceRecord = { name: 'example.', type: 2, class: 1, ttl: 300, rdata: wireName('ns.mail.example.') };
  cache.store(query('example.', { type: 15 }).key, { ...response('example.', { answers: mxs, type: 15 }), authorities: [ns] });
  for (let i = 0; i < 3; i++) {
    const q = query('example.', { type: 15, id: i });
    const m = decodeMessage(cache.answer(q.raw, q.key, 512) as Buffer);
    const expected = [...mxs.slice((i + 1) % 3), ...mxs.slice(0, (i + 1) % 3)];
    assert.equal(m.answers, expected);
    assert.equal(m.authorities, [ns]);
  }
  // A single record, and an answer of two RRsets of one record each: nothing to rotate.
  cache.store(query('one.example.').key, response('one.example.', { answers: [a('one.example.', 300, 9)] }));
  const one = query('one.example.');
  assert.equal(decodeMessage(cache.answer(one.raw, one.key, 512) as Buffer).answers.map((r) => r.rdata[3]), [9]);
});

s('miss when larger than the client UDP size; hit with a larger one', () => {
  const cache = new PacketCache({ clock: new ManualClock(), maxBytes: 100_000 });
  const answers: ResourceRecord[] = [];
  for (let i = 0; i < 60; i++) answers.push({ name: 'big.example.', type: 16, class: 1, ttl: 300, rdata: Buffer.alloc(20, 0x41) });
  const q = query('big.example.', { type: 16, edns: EDNS });
  cache.store(q.key, response('big.example.', { type: 16, answers, edns: EDNS }));
  assert.is(cache.answer(q.raw, q.key, 512), null);
  const out = cache.answer(q.raw, q.key, 4096);
  assert.ok(out && out.length > 512);
  assert.is(decodeMessage(out).answers.length, 60);
  assert.equal([cache.stats().hits, cache.stats().misses], [1, 1]);
});

s('expiry at the smallest TTL', () => {
  const clock = new ManualClock();
  const cache = new PacketCache({ clock, maxBytes: 100_000 });
  const q = query('x.example.');
  cache.store(q.key, response('x.example.'));
  clock.advanceMs(299_999);
  const out = cache.answer(q.raw, q.key, 512);
  assert.equal(decodeMessage(out as Buffer).answers.map((r) => r.ttl), [301, 1], 'rotated: the first hit starts with the second record');
  clock.advanceMs(1);
  assert.is(cache.answer(q.raw, q.key, 512), null);
  assert.is(cache.stats().entries, 0, 'expired entry dropped on access');
});

s('EDNS and plain queries are cached apart; the OPT follows the query', () => {
  const cache = new PacketCache({ clock: new ManualClock(), maxBytes: 100_000 });
  const plain = query('e.example.');
  const edns = query('e.example.', { edns: EDNS });
  cache.store(plain.key, response('e.example.'));
  assert.is(cache.answer(edns.raw, edns.key, 1232), null, 'EDNS query does not get the plain answer');
  cache.store(edns.key, response('e.example.', { edns: EDNS }));
  assert.is(cache.stats().entries, 2);
  assert.is(decodeMessage(cache.answer(plain.raw, plain.key, 512) as Buffer).edns, null);
  assert.is(decodeMessage(cache.answer(edns.raw, edns.key, 1232) as Buffer).edns?.udpSize, 1232);

  // A response whose OPT presence does not match the query is not stored.
  const other = query('f.example.');
  cache.store(other.key, response('f.example.', { edns: EDNS }));
  assert.is(cache.answer(other.raw, other.key, 512), null);
});

s('DO and CD bits are part of the key; CD is copied into the answer', () => {
  const cache = new PacketCache({ clock: new ManualClock(), maxBytes: 100_000 });
  const base = query('d.example.', { edns: EDNS });
  cache.store(base.key, response('d.example.', { edns: EDNS }));
  const withDo = query('d.example.', { edns: { ...EDNS, dnssecOk: true } });
  assert.is(cache.answer(withDo.raw, withDo.key, 1232), null);
  const withCd = query('d.example.', { edns: EDNS, cd: true });
  assert.is(cache.answer(withCd.raw, withCd.key, 1232), null);
  cache.store(withCd.key, response('d.example.', { edns: EDNS }));
  const out = cache.answer(withCd.raw, withCd.key, 1232) as Buffer;
  assert.is(decodeMessage(out).flags.cd, true);
  assert.is(decodeMessage(cache.answer(base.raw, base.key, 1232) as Buffer).flags.cd, false);
});

s('not stored: SERVFAIL, REFUSED, TTL 0, no records, TC, a different question', () => {
  const cache = new PacketCache({ clock: new ManualClock(), maxBytes: 100_000 });
  const q = query('n.example.');
  cache.store(q.key, response('n.example.', { rcode: 2 }));
  cache.store(q.key, response('n.example.', { rcode: 5 }));
  cache.store(q.key, response('n.example.', { answers: [a('n.example.', 0, 1), a('n.example.', 300, 2)] }));
  cache.store(q.key, response('n.example.', { answers: [] }));
  cache.store(q.key, response('n.example.', { tc: true }));
  cache.store(q.key, response('other.example.'));
  assert.is(cache.stats().entries, 0);
  assert.is(cache.answer(q.raw, q.key, 512), null);
});

s('NXDOMAIN with its SOA is cached and its SOA TTL counts down', () => {
  const clock = new ManualClock();
  const cache = new PacketCache({ clock, maxBytes: 100_000 });
  const soaRdata = Buffer.concat([
    Buffer.from([2, 0x6e, 0x73, 7, ...Buffer.from('example'), 0]),
    Buffer.from([4, ...Buffer.from('host'), 7, ...Buffer.from('example'), 0]),
    Buffer.alloc(20, 0),
  ]);
  const msg = response('nx.example.', { rcode: 3, answers: [] });
  msg.authorities = [{ name: 'example.', type: 6, class: 1, ttl: 60, rdata: soaRdata }];
  const q = query('nx.example.');
  cache.store(q.key, msg);
  clock.advanceSec(15);
  const m = decodeMessage(cache.answer(q.raw, q.key, 512) as Buffer);
  assert.is(m.rcode, 3);
  assert.is(m.authorities[0]?.ttl, 45);
});

s('near-expiry hook: once per entry, only after two hits, only in the last tenth', () => {
  const clock = new ManualClock();
  const calls: PrefetchQuestion[] = [];
  const cache = new PacketCache({ clock, maxBytes: 100_000, onNearExpiry: (q) => calls.push(q) });
  const q = query('Pre.Example.');
  cache.store(q.key, response('Pre.Example.', { answers: [a('Pre.Example.', 100, 1)] }));
  cache.answer(q.raw, q.key, 512);
  clock.advanceSec(89);
  cache.answer(q.raw, q.key, 512);
  assert.is(calls.length, 0, 'not near expiry yet');
  clock.advanceSec(2);
  cache.answer(q.raw, q.key, 512);
  assert.equal(calls, [{ name: 'pre.example.', type: 1, class: 1 }]);
  cache.answer(q.raw, q.key, 512);
  assert.is(calls.length, 1, 'once per entry');

  // A single hit inside the window is not enough.
  const q2 = query('once.example.');
  cache.store(q2.key, response('once.example.', { answers: [a('once.example.', 100, 1)] }));
  clock.advanceSec(95);
  cache.answer(q2.raw, q2.key, 512);
  assert.is(calls.length, 1);
  cache.answer(q2.raw, q2.key, 512);
  assert.is(calls.length, 2);

  // A restored entry may fire again.
  cache.store(q.key, response('pre.example.', { answers: [a('pre.example.', 100, 1)] }));
  clock.advanceSec(95);
  cache.answer(q.raw, q.key, 512);
  cache.answer(q.raw, q.key, 512);
  assert.is(calls.length, 3);
});

s('a throwing hook does not fail the answer and is counted', () => {
  const clock = new ManualClock();
  const cache = new PacketCache({ clock, maxBytes: 100_000, onNearExpiry: () => { throw new Error('boom'); } });
  const q = query('t.example.');
  cache.store(q.key, response('t.example.', { answers: [a('t.example.', 10, 1)] }));
  clock.advanceMs(9500);
  assert.ok(cache.answer(q.raw, q.key, 512));
  assert.ok(cache.answer(q.raw, q.key, 512));
  assert.is(cache.prefetchHookErrors, 1);
});

s('flushName, flushZone, flushAll', () => {
  const cache = new PacketCache({ clock: new ManualClock(), maxBytes: 100_000 });
  for (const n of ['example.', 'www.example.', 'a.b.example.', 'xexample.', 'other.']) {
    cache.store(query(n).key, response(n));
    cache.store(query(n, { edns: EDNS }).key, response(n, { edns: EDNS }));
  }
  assert.is(cache.flushName('WWW.example.'), 2);
  assert.is(cache.flushZone('Example.'), 4);
  assert.is(cache.stats().entries, 4);
  const q = query('xexample.');
  assert.ok(cache.answer(q.raw, q.key, 512), 'xexample. is not under example.');
  cache.flushAll();
  assert.is(cache.stats().entries, 0);
  assert.is(cache.stats().bytes, 0);
});

s('a flush of a name or zone takes the answers whose CNAME chain passes through it (as unbound-control flush)', () => {
  const wireName = (n: string): Buffer => Buffer.concat([...n.split('.').filter(Boolean).map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
  const cname = (owner: string, target: string): ResourceRecord => ({ name: owner, type: 5, class: 1, ttl: 300, rdata: wireName(target) });
  const cache = new PacketCache({ clock: new ManualClock(), maxBytes: 100_000 });
  const chain = (): void => {
    cache.store(query('alias.example.').key, response('alias.example.', { answers: [cname('alias.example.', 'alias2.example.'), cname('alias2.example.', 'www.other.'), a('www.other.', 300, 1)] }));
    cache.store(query('plain.example.').key, response('plain.example.'));
  };
  chain();
  assert.is(cache.flushName('WWW.other.'), 1, 'the alias whose chain ends at the flushed name');
  assert.is(cache.stats().entries, 1);
  chain();
  assert.is(cache.flushName('alias2.example.'), 1, 'a link in the middle');
  chain();
  assert.is(cache.flushZone('other.'), 1, 'a zone the chain leads into');
  assert.is(cache.flushZone('nowhere.'), 0);
  const q = query('plain.example.');
  assert.ok(cache.answer(q.raw, q.key, 512), 'answers without such a link stay');
});

s('byte budget: old answers evicted, total stays within budget', () => {
  const cache = new PacketCache({ clock: new ManualClock(), maxBytes: 5000 });
  for (let i = 0; i < 200; i++) {
    const n = `host${i}.example.`;
    cache.store(query(n).key, response(n));
    assert.ok(cache.stats().bytes <= 5000);
  }
  const last = query('host199.example.');
  assert.ok(cache.answer(last.raw, last.key, 512));
  const first = query('host0.example.');
  assert.is(cache.answer(first.raw, first.key, 512), null);
  assert.ok(cache.stats().entries > 5 && cache.stats().entries < 200);
});

s.run();
