// restoreCase: 0x20 randomisation undone in a response before anything is cached or answered,
// including the names a server compressed against our randomised question (owner and rdata names).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { restoreCase } from '../../../src/dns/iterator/response-classifier.js';
import { decodeMessage, encodeMessage, restoreRdataCase } from '../../../src/dns/wire/message.js';
import { nameToWire } from '../../../src/dns/wire/name.js';
import { rdataNames, rdataToData } from '../../../src/dns/wire/rdata.js';
import { RRClass, RRType, type Message, type ResourceRecord } from '../../../src/dns/wire/types.js';

const s = suite('dns/iterator/restore-case');

const SENT = 'wWw.ExAmPle.cOm.';
const ORIGINAL = 'www.example.com.';

function mx(owner: string, exchange: string): ResourceRecord {
  return { name: owner, type: RRType.MX, class: RRClass.IN, ttl: 300, rdata: Buffer.concat([Buffer.from([0, 10]), nameToWire(exchange)]) };
}

/** A response to SENT as a server sends it: our encoder compresses names against the question, as servers do. */
function response(answers: ResourceRecord[], additionals: ResourceRecord[] = []): Message {
  const wire = encodeMessage({
    id: 7,
    flags: { qr: true, opcode: 0, aa: true, tc: false, rd: false, ra: false, z: false, ad: false, cd: false },
    rcode: 0,
    questions: [{ name: SENT, type: RRType.MX, class: RRClass.IN }],
    answers,
    authorities: [],
    additionals,
    edns: null,
  }).bytes;
  return decodeMessage(wire);
}

s('rdata and owner names compressed against the randomised question get the original case back', () => {
  const msg = response(
    [mx('www.example.com.', 'mail.example.com.')],
    [{ name: 'mail.example.com.', type: RRType.A, class: RRClass.IN, ttl: 300, rdata: Buffer.from([192, 0, 2, 25]) }],
  );
  // As received: the compression pointers carry our random case into both names.
  assert.is((rdataToData(RRType.MX, msg.answers[0]!.rdata) as { exchange: string }).exchange, 'mail.ExAmPle.cOm.');
  assert.is(msg.additionals[0]!.name, 'mail.ExAmPle.cOm.');
  restoreCase(msg, ORIGINAL, SENT);
  assert.is((rdataToData(RRType.MX, msg.answers[0]!.rdata) as { exchange: string }).exchange, 'mail.example.com.');
  assert.is(msg.additionals[0]!.name, 'mail.example.com.');
  assert.is(msg.answers[0]!.name, 'www.example.com.');
  assert.is(msg.questions[0]!.name, ORIGINAL);
});

s('owner names: the query name and its ancestors in the sent case, in the server\'s own case, and others', () => {
  const a = (name: string): ResourceRecord => ({ name, type: RRType.A, class: RRClass.IN, ttl: 300, rdata: Buffer.from([192, 0, 2, 1]) });
  const msg: Message = {
    id: 7,
    flags: { qr: true, opcode: 0, aa: true, tc: false, rd: false, ra: false, z: false, ad: false, cd: false },
    rcode: 0,
    questions: [{ name: SENT, type: RRType.A, class: RRClass.IN }],
    answers: [a(SENT), a('ExAmPle.cOm.'), a('cOm.'), a('EXAMPLE.COM.'), a('Ww.ExAmPle.cOm.'), a('mail.ExAmPle.cOm.'), a('.')],
    authorities: [],
    additionals: [],
    edns: null,
  };
  restoreCase(msg, ORIGINAL, SENT);
  assert.equal(msg.answers.map((r) => r.name), [
    ORIGINAL, // the query name as sent
    'example.com.', // ancestors as sent
    'com.',
    'example.com.', // an ancestor in the server's own case: the original case too
    'Ww.example.com.', // a suffix of the sent string, but not at a label boundary: its first label is its own
    'mail.example.com.', // below an ancestor: the randomised labels restored
    '.',
  ]);
});

s('restoreRdataCase: only labels equal to the randomised ones change; other types and the server\'s own case stay', () => {
  const own = mx('x.', 'MAIL.EXAMPLE.COM.').rdata;
  restoreRdataCase(RRType.MX, own, nameToWire(SENT), nameToWire(ORIGINAL));
  assert.equal(rdataNames(RRType.MX, own), ['MAIL.EXAMPLE.COM.'], 'the server\'s own case is kept');
  const partial = mx('x.', 'mail.Other.cOm.').rdata;
  restoreRdataCase(RRType.MX, partial, nameToWire(SENT), nameToWire(ORIGINAL));
  assert.equal(rdataNames(RRType.MX, partial), ['mail.Other.com.'], 'the matching trailing labels only');
  const soa = Buffer.concat([nameToWire('ns1.ExAmPle.cOm.'), nameToWire('hostmaster.ExAmPle.cOm.'), Buffer.alloc(20)]);
  restoreRdataCase(RRType.SOA, soa, nameToWire(SENT), nameToWire(ORIGINAL));
  assert.equal(rdataNames(RRType.SOA, soa), ['ns1.example.com.', 'hostmaster.example.com.']);
  const a = Buffer.from([0x45, 0x78, 0x41, 0x6d]);
  restoreRdataCase(RRType.A, a, nameToWire(SENT), nameToWire(ORIGINAL));
  assert.equal([...a], [0x45, 0x78, 0x41, 0x6d], 'no names in A rdata');
});

s.run();
