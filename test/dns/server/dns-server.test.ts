// DnsServer against real loopback sockets with a fake Recursor: UDP and TCP answers, ACL, malformed
// input, EDNS, truncation, the packet cache path, local zones, limits and bind errors. TCP framing,
// pipelining, idle timeout and the connection cap are in tcp-connections.test.ts. Every server and
// client socket is closed per test.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import dgram from 'node:dgram';
import { nativeUdp } from '../../../src/native/native-udp.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { requirePeer } from '../../helpers/peers.js';
import { DnsServer } from '../../../src/dns/server/dns-server.js';
import { LocalZones } from '../../../src/dns/server/local-zones.js';
import { rdataToData } from '../../../src/dns/wire/rdata.js';
import { Rcode, RRType } from '../../../src/dns/wire/types.js';
import { CidrSet } from '../../../src/util/cidr.js';
import { ManualClock } from '../../../src/util/clock.js';
import { DnsError } from '../../../src/util/errors.js';
import { createSilentLogger } from '../../../src/util/logger.js';
import { capturingLogger } from '../../helpers/capturing-logger.js';
import {
  FakeRecursor,
  LOOPBACK,
  TcpClient,
  aRecord,
  answerAddresses,
  buildQuery,
  decodeReply,
  rmemMax,
  startServer,
  tcpQuery,
  udpQuery,
  waitUntil,
} from './dns-test-client.js';

const s = suite('dns/server/dns-server');

s('listens on UDP and TCP on the same resolved port', async () => {
  const c = await startServer();
  try {
    const list = c.server.addresses();
    assert.equal(list.map((a) => a.transport).sort(), ['tcp', 'udp']);
    assert.ok(list.every((a) => a.port === c.port && a.port > 0 && a.address === LOOPBACK));
  } finally {
    await c.server.close();
  }
});

s('answers over UDP with ID, flags and the question as sent', async () => {
  const c = await startServer();
  try {
    const m = decodeReply(await udpQuery(c.port, buildQuery('WwW.Example', 'A', { id: 4242 })));
    assert.is(m.id, 4242);
    assert.is(m.flags.qr, true);
    assert.is(m.flags.rd, true);
    assert.is(m.flags.ra, true);
    assert.is(m.flags.aa, false);
    assert.is(m.rcode, Rcode.NOERROR);
    assert.is(m.questions[0]?.name, 'WwW.Example.');
    assert.equal(answerAddresses(m), ['192.0.2.1']);
    assert.is(m.edns, null, 'no OPT in reply to a query without one');
    assert.is(c.recursor.calls, 1);
    assert.is(c.server.stats().queries.udp, 1);
    assert.is(c.server.stats().sources.recursion, 1);
  } finally {
    await c.server.close();
  }
});

s('echoes an OPT with udp 1232 and the DO bit when the client sent EDNS', async () => {
  const c = await startServer();
  try {
    const m = decodeReply(await udpQuery(c.port, buildQuery('www.example', 'A', { edns: 4096, dnssecOk: true })));
    assert.ok(m.edns);
    assert.is(m.edns.udpSize, 1232);
    assert.is(m.edns.version, 0);
    assert.is(m.edns.dnssecOk, true);
  } finally {
    await c.server.close();
  }
});

s('error replies to a DO=1 query keep the DO bit in their OPT (RFC 3225 s3), as Unbound does', async () => {
  const c = await startServer();
  const withDo = { edns: 4096, dnssecOk: true } as const;
  try {
    const replies = [
      await udpQuery(c.port, buildQuery('www.example', 'A', { ...withDo, opcode: 2 })), // NOTIMP
      await udpQuery(c.port, buildQuery('version.bind', 'TXT', { ...withDo, qclass: 'CH' })), // REFUSED
      await tcpQuery(c.port, buildQuery('example', 'AXFR', withDo)), // REFUSED
    ];
    for (const r of replies) {
      const m = decodeReply(r);
      assert.ok(m.rcode !== Rcode.NOERROR, `an error reply (rcode ${m.rcode})`);
      assert.ok(m.edns, `rcode ${m.rcode}: an OPT`);
      assert.is(m.edns.dnssecOk, true, `rcode ${m.rcode}: DO copied`);
    }
    const plain = decodeReply(await udpQuery(c.port, buildQuery('www.example', 'A', { edns: 4096, opcode: 2 })));
    assert.is(plain.edns?.dnssecOk, false, 'DO clear when the query had it clear');
    assert.is(c.recursor.calls, 0);
  } finally {
    await c.server.close();
  }
});

s('answers over TCP', async () => {
  const c = await startServer();
  try {
    const m = decodeReply(await tcpQuery(c.port, buildQuery('www.example', 'A', { id: 7 })));
    assert.is(m.id, 7);
    assert.equal(answerAddresses(m), ['192.0.2.1']);
    assert.is(c.server.stats().queries.tcp, 1);
  } finally {
    await c.server.close();
  }
});

s('ACL: a client outside the allow list gets REFUSED and the recursor is not asked', async () => {
  const c = await startServer({ allow: ['127.0.0.2/32'] });
  try {
    const raw = await udpQuery(c.port, buildQuery('www.example', 'A', { id: 99, edns: 1232 }));
    assert.is(raw?.length, 12, 'the header alone, as Unbound: no question, no OPT');
    const m = decodeReply(raw);
    assert.is(m.rcode, Rcode.REFUSED);
    assert.is(m.id, 99);
    assert.is(m.flags.qr, true);
    assert.is(m.flags.rd, true, 'the query\'s RD kept');
    assert.is(m.flags.ra, false, 'no recursion for this client: RA clear');
    assert.is(m.questions.length, 0);
    const t = decodeReply(await tcpQuery(c.port, buildQuery('www.example')));
    assert.is(t.rcode, Rcode.REFUSED);
    assert.is(c.recursor.calls, 0);
    assert.is(c.server.stats().refused, 2);
  } finally {
    await c.server.close();
  }
});

s('a response (QR=1) is dropped, never answered', async () => {
  const c = await startServer();
  try {
    const q = buildQuery('www.example');
    q[2] = (q[2] as number) | 0x80;
    assert.is(await udpQuery(c.port, q, 300), null);
    assert.is(await udpQuery(c.port, Buffer.from([1, 2, 3]), 300), null, 'shorter than a header');
    assert.is(c.server.stats().dropped, 2);
    assert.is(c.recursor.calls, 0);
  } finally {
    await c.server.close();
  }
});

s('FORMERR for garbage with a readable header; FORMERR for qdcount 2', async () => {
  const c = await startServer();
  try {
    const garbage = Buffer.concat([Buffer.from([0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]), Buffer.from([0x3f, 0xff, 0xfe])]);
    const m = decodeReply(await udpQuery(c.port, garbage));
    assert.is(m.rcode, Rcode.FORMERR);
    assert.is(m.id, 0xabcd);
    const two = buildQuery('www.example');
    const q = two.subarray(12);
    const both = Buffer.concat([two.subarray(0, 12), q, q]);
    both[5] = 2;
    assert.is(decodeReply(await udpQuery(c.port, both)).rcode, Rcode.FORMERR);
    assert.is(c.recursor.calls, 0);
    assert.ok(c.server.stats().formerr >= 2);
  } finally {
    await c.server.close();
  }
});

s('a qname that is a compression pointer into the header is FORMERR, not a query for another name', async () => {
  const c = await startServer();
  try {
    // Pointer to offset 4 (QDCOUNT's high byte, 0): followed, it would read as the root name.
    const header = Buffer.from([0x51, 0x52, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
    const q = Buffer.concat([header, Buffer.from([0xc0, 0x04, 0x00, 0x02, 0x00, 0x01])]);
    for (const reply of [await udpQuery(c.port, q), await tcpQuery(c.port, q)]) {
      const m = decodeReply(reply);
      assert.is(m.rcode, Rcode.FORMERR);
      assert.is(m.id, 0x5152);
    }
    assert.is(c.recursor.calls, 0, 'nothing was resolved');
  } finally {
    await c.server.close();
  }
});

s('NOTIMP for opcode STATUS (2)', async () => {
  const c = await startServer();
  try {
    const m = decodeReply(await udpQuery(c.port, buildQuery('www.example', 'A', { opcode: 2 })));
    assert.is(m.rcode, Rcode.NOTIMP);
    assert.is(m.flags.opcode, 2);
  } finally {
    await c.server.close();
  }
});

s('BADVERS for EDNS version 1 (RFC 6891 s6.1.3), with an OPT of version 0', async () => {
  const c = await startServer();
  try {
    const m = decodeReply(await udpQuery(c.port, buildQuery('www.example', 'A', { edns: 1232, ednsVersion: 1 })));
    assert.is(m.rcode, Rcode.BADVERS);
    assert.ok(m.edns);
    assert.is(m.edns.version, 0);
    assert.is(c.recursor.calls, 0);
  } finally {
    await c.server.close();
  }
});

s('class CH and HS are REFUSED; AXFR and IXFR are REFUSED over UDP and TCP, as Unbound does; RA set (the client may recurse)', async () => {
  const c = await startServer();
  try {
    const ch = decodeReply(await udpQuery(c.port, buildQuery('version.bind', 'TXT', { qclass: 'CH' })));
    assert.is(ch.rcode, Rcode.REFUSED);
    assert.is(ch.flags.ra, true);
    assert.is(decodeReply(await tcpQuery(c.port, buildQuery('example', 'AXFR'))).flags.ra, true);
    assert.is(decodeReply(await udpQuery(c.port, buildQuery('version.bind', 'TXT', { qclass: 'HS' }))).rcode, Rcode.REFUSED);
    // IXFR over UDP is well-formed (RFC 1995 s2): a refusal, not FORMERR.
    for (const type of ['AXFR', 'IXFR'] as const) {
      const udp = decodeReply(await udpQuery(c.port, buildQuery('example', type)));
      assert.is(udp.rcode, Rcode.REFUSED, `${type} over UDP`);
      assert.is(udp.questions[0]?.type, RRType[type], `${type}: the question is echoed`);
      assert.is(decodeReply(await tcpQuery(c.port, buildQuery('example', type))).rcode, Rcode.REFUSED, `${type} over TCP`);
    }
    assert.is(c.server.stats().formerr, 0);
    assert.is(c.recursor.calls, 0);
  } finally {
    await c.server.close();
  }
});

s('meta-types 128-248 are FORMERR and never reach the recursor; 127 and 249+ are not meta', async () => {
  const c = await startServer();
  const withType = (t: number): Buffer => {
    const q = buildQuery('example', 'A');
    q.writeUInt16BE(t, 12 + 9); // after the header and the 9-byte name 'example.'
    return q;
  };
  try {
    for (const t of [128, 200, 248]) assert.is(decodeReply(await udpQuery(c.port, withType(t))).rcode, Rcode.FORMERR, `type ${t}`);
    assert.is(decodeReply(await tcpQuery(c.port, withType(200))).rcode, Rcode.FORMERR);
    assert.is(c.recursor.calls, 0);
    assert.is.not(decodeReply(await udpQuery(c.port, withType(127))).rcode, Rcode.FORMERR);
    assert.is(c.recursor.calls, 1);
  } finally {
    await c.server.close();
  }
});

s('qtype OPT and TSIG are FORMERR (records of the additional section, never a question); TKEY, MAILA, MAILB NOTIMP', async () => {
  const c = await startServer();
  const withType = (t: number): Buffer => {
    const q = buildQuery('example', 'A', { edns: 1232 });
    q.writeUInt16BE(t, 12 + 9); // after the header and the 9-byte name 'example.'
    return q;
  };
  try {
    for (const t of [41, 250]) {
      const m = decodeReply(await udpQuery(c.port, withType(t)));
      assert.is(m.rcode, Rcode.FORMERR, `type ${t}`);
      assert.is(m.questions[0]?.type, t, `type ${t}: the question is echoed`);
      assert.ok(m.edns, `type ${t}: an OPT in reply to an OPT`);
      assert.is(decodeReply(await tcpQuery(c.port, withType(t))).rcode, Rcode.FORMERR, `type ${t} over TCP`);
    }
    for (const t of [249, 253, 254]) assert.is(decodeReply(await udpQuery(c.port, withType(t))).rcode, Rcode.NOTIMP, `type ${t}`);
    assert.is(c.recursor.calls, 0);
  } finally {
    await c.server.close();
  }
});

s('ANY goes to the recursor like other types', async () => {
  const c = await startServer();
  try {
    const m = decodeReply(await udpQuery(c.port, buildQuery('www.example', 'ANY')));
    assert.equal(answerAddresses(m), ['192.0.2.1']);
    assert.is(c.recursor.questions[0]?.type, RRType.ANY);
  } finally {
    await c.server.close();
  }
});

s('truncation: a large answer over UDP without EDNS gets TC; over TCP all of it', async () => {
  const c = await startServer();
  try {
    const udpBytes = await udpQuery(c.port, buildQuery('big.example', 'A', { id: 5 }));
    assert.ok(udpBytes && udpBytes.length <= 512);
    const m = decodeReply(udpBytes);
    assert.is(m.flags.tc, true);
    assert.is(m.answers.length, 0);
    assert.is(m.questions[0]?.name, 'big.example.');
    const t = decodeReply(await tcpQuery(c.port, buildQuery('big.example', 'A', { id: 5 })));
    assert.is(t.flags.tc, false);
    assert.is(answerAddresses(t).length, 60);
    // With EDNS 1232 the ~1 KB answer fits in UDP.
    const e = await udpQuery(c.port, buildQuery('big.example', 'A', { edns: 4096 }));
    assert.ok(e && e.length > 512 && e.length <= 1232);
    assert.is(decodeReply(e).flags.tc, false);
  } finally {
    await c.server.close();
  }
});

s('packet cache: a repeated query is served without the recursor, in the client letter case', async () => {
  const c = await startServer();
  try {
    const first = decodeReply(await udpQuery(c.port, buildQuery('www.example', 'A', { id: 1 })));
    assert.equal(answerAddresses(first), ['192.0.2.1']);
    assert.is(c.recursor.calls, 1);
    c.clock.advanceSec(100);
    const second = decodeReply(await udpQuery(c.port, buildQuery('WWW.eXaMpLe', 'A', { id: 2, rd: false })));
    assert.is(c.recursor.calls, 1, 'served from the packet cache');
    assert.is(second.id, 2);
    assert.is(second.flags.rd, false);
    assert.is(second.questions[0]?.name, 'WWW.eXaMpLe.');
    assert.equal(answerAddresses(second), ['192.0.2.1']);
    assert.is(second.answers[0]?.ttl, 200, 'TTL lowered by the time in cache');
    assert.is(c.server.stats().sources['packet-cache'], 1);
    // Over TCP the same entry serves as well.
    decodeReply(await tcpQuery(c.port, buildQuery('www.example', 'A', { id: 3 })));
    assert.is(c.recursor.calls, 1);
    // EDNS queries have their own entries.
    decodeReply(await udpQuery(c.port, buildQuery('www.example', 'A', { edns: 1232 })));
    assert.is(c.recursor.calls, 2);
    // A query with TC set is FORMERR, cached answer or not (the fast path leaves it to the slow one).
    const tc = Buffer.from(buildQuery('www.example', 'A', { id: 4 }));
    tc[2] = tc[2]! | 0x02;
    const refused = decodeReply(await udpQuery(c.port, tc));
    assert.is(refused.rcode, Rcode.FORMERR);
    assert.is(refused.answers.length, 0);
  } finally {
    await c.server.close();
  }
});

s('uncacheable answers are not stored', async () => {
  const c = await startServer();
  const orig = c.recursor.answerQuery.bind(c.recursor);
  c.recursor.answerQuery = async (q, o) => ({ ...(await orig(q, o)), source: 'stale', cacheable: false });
  try {
    await udpQuery(c.port, buildQuery('www.example'));
    await udpQuery(c.port, buildQuery('www.example'));
    assert.is(c.recursor.calls, 2);
    assert.is(c.server.stats().sources.stale, 2);
  } finally {
    await c.server.close();
  }
});

s('local zones: localhost A, 1.0.0.127 PTR, test. NXDOMAIN, all with AA and no recursion', async () => {
  const c = await startServer();
  try {
    const a = decodeReply(await udpQuery(c.port, buildQuery('localhost', 'A')));
    assert.is(a.flags.aa, true);
    assert.equal(answerAddresses(a), ['127.0.0.1']);
    const ptr = decodeReply(await udpQuery(c.port, buildQuery('1.0.0.127.in-addr.arpa', 'PTR')));
    assert.is(ptr.answers[0]?.type, RRType.PTR);
    assert.is(rdataToData(RRType.PTR, ptr.answers[0]?.rdata as Buffer), 'localhost.');
    const nx = decodeReply(await udpQuery(c.port, buildQuery('mail.test', 'MX', { edns: 1232 })));
    assert.is(nx.rcode, Rcode.NXDOMAIN);
    assert.is(nx.flags.aa, true);
    assert.is(nx.authorities[0]?.type, RRType.SOA);
    const rev = decodeReply(await tcpQuery(c.port, buildQuery('5.1.168.192.in-addr.arpa', 'PTR')));
    assert.is(rev.rcode, Rcode.NXDOMAIN);
    assert.is(c.recursor.calls, 0);
    assert.is(c.server.stats().sources.local, 4);
  } finally {
    await c.server.close();
  }
});

s('local zones: a disabled default zone goes to the recursor; admin data is served', async () => {
  const zones = new LocalZones();
  zones.disable('test.');
  zones.loadText('server:\n  local-data: "printer.lan. 600 IN A 192.168.1.20"\n  local-zone: "blocked.example." always_nxdomain\n', 'admin.conf');
  const c = await startServer({ zones });
  try {
    const t = decodeReply(await udpQuery(c.port, buildQuery('www.test', 'A')));
    assert.is(t.rcode, Rcode.NXDOMAIN);
    assert.is(t.flags.aa, false, 'from the recursor, not local');
    assert.is(c.recursor.calls, 1);
    const p = decodeReply(await udpQuery(c.port, buildQuery('Printer.LAN', 'A')));
    assert.equal(answerAddresses(p), ['192.168.1.20']);
    assert.is(p.questions[0]?.name, 'Printer.LAN.');
    assert.is(p.answers[0]?.ttl, 600);
    const b = decodeReply(await udpQuery(c.port, buildQuery('x.blocked.example', 'A')));
    assert.is(b.rcode, Rcode.NXDOMAIN);
    assert.is(b.flags.aa, true);
    assert.is(c.recursor.calls, 1);
  } finally {
    await c.server.close();
  }
});

s('setLocalZones and setAllow take effect for later queries (SIGHUP reload)', async () => {
  const c = await startServer();
  try {
    // Recursion's answer, packet-cached: the zones set below must still answer this name.
    assert.equal(answerAddresses(decodeReply(await udpQuery(c.port, buildQuery('www.example')))), ['192.0.2.1']);
    assert.equal(answerAddresses(decodeReply(await udpQuery(c.port, buildQuery('www.example')))), ['192.0.2.1']);
    assert.is(c.recursor.calls, 1, 'the second answer came from the packet cache');
    const zones = new LocalZones({ defaults: false });
    zones.addData('www.example. 60 IN A 192.0.2.77');
    c.server.setLocalZones(zones);
    const m = decodeReply(await udpQuery(c.port, buildQuery('www.example')));
    assert.equal(answerAddresses(m), ['192.0.2.77']);
    assert.is(m.flags.aa, true);
    c.server.setAllow(new CidrSet(['127.0.0.2/32']));
    assert.is(decodeReply(await udpQuery(c.port, buildQuery('www.example'))).rcode, Rcode.REFUSED);
    assert.is(c.recursor.calls, 1);
  } finally {
    await c.server.close();
  }
});

s('a recursive answer still in flight at a reload of the local zones is not packet-cached', async () => {
  const c = await startServer();
  try {
    const release = c.recursor.holdName('www.example.');
    const pending = udpQuery(c.port, buildQuery('www.example'));
    await waitUntil(() => c.recursor.calls === 1);
    const zones = new LocalZones({ defaults: false });
    zones.addData('www.example. 60 IN A 192.0.2.77');
    c.server.setLocalZones(zones);
    release();
    // The query asked before the reload gets recursion's answer, but the new zone answers from now on.
    assert.equal(answerAddresses(decodeReply(await pending)), ['192.0.2.1']);
    const m = decodeReply(await udpQuery(c.port, buildQuery('www.example')));
    assert.equal(answerAddresses(m), ['192.0.2.77']);
    assert.is(m.flags.aa, true);
    assert.is(c.cache.stats().entries, 0);
  } finally {
    await c.server.close();
  }
});

s('works without a packet cache', async () => {
  const c = await startServer({ cache: false });
  try {
    await udpQuery(c.port, buildQuery('www.example'));
    const m = decodeReply(await udpQuery(c.port, buildQuery('www.example')));
    assert.equal(answerAddresses(m), ['192.0.2.1']);
    assert.is(c.recursor.calls, 2);
  } finally {
    await c.server.close();
  }
});

s('maxConcurrentQueries: beyond it SERVFAIL at once', async () => {
  const c = await startServer({ limits: { maxConcurrentQueries: 2 } });
  const release = c.recursor.holdName('slow.example.');
  try {
    const p1 = udpQuery(c.port, buildQuery('slow.example', 'A', { id: 1 }));
    const p2 = udpQuery(c.port, buildQuery('slow.example', 'A', { id: 2 }));
    await waitUntil(() => c.server.queriesInFlight === 2);
    const third = decodeReply(await udpQuery(c.port, buildQuery('www.example', 'A', { id: 3 })));
    assert.is(third.rcode, Rcode.SERVFAIL);
    assert.is(c.server.stats().overloaded, 1);
    release();
    assert.is(decodeReply(await p1).rcode, Rcode.NXDOMAIN);
    assert.is(decodeReply(await p2).rcode, Rcode.NXDOMAIN);
  } finally {
    release();
    await c.server.close();
  }
});

s('an exception from the recursor becomes SERVFAIL and the server keeps answering', async () => {
  const c = await startServer();
  c.recursor.throwFor.add('boom.example.');
  try {
    const m = decodeReply(await udpQuery(c.port, buildQuery('boom.example', 'A', { id: 77 })));
    assert.is(m.rcode, Rcode.SERVFAIL);
    assert.is(m.id, 77);
    assert.is(c.server.stats().internalErrors, 1);
    assert.equal(answerAddresses(decodeReply(await udpQuery(c.port, buildQuery('www.example')))), ['192.0.2.1']);
  } finally {
    await c.server.close();
  }
});

s('close() lets a query in flight finish and be answered', async () => {
  const c = await startServer();
  const release = c.recursor.holdName('slow.example.');
  const client = await TcpClient.connect(c.port);
  try {
    client.send(buildQuery('slow.example', 'A', { id: 9 }));
    await waitUntil(() => c.server.queriesInFlight === 1);
    const closing = c.server.close();
    release();
    await closing;
    const [reply] = await client.waitReplies(1);
    assert.is(decodeReply(reply).id, 9);
    await client.waitClosed();
    assert.equal(c.server.addresses(), []);
  } finally {
    client.close();
    await c.server.close();
  }
});

s('bind errors: EADDRINUSE maps to DNS_ERR_BIND_IN_USE naming the address', async () => {
  const c = await startServer();
  const other = new DnsServer({
    recursor: new FakeRecursor(),
    packetCache: null,
    localZones: new LocalZones(),
    allow: new CidrSet(['127.0.0.0/8']),
    logger: createSilentLogger(),
    clock: new ManualClock(),
  });
  try {
    let err: unknown;
    try {
      await other.listen([{ address: LOOPBACK, port: c.port }]);
    } catch (e) {
      err = e;
    }
    assert.instance(err, DnsError);
    assert.is((err as DnsError).code, 'DNS_ERR_BIND_IN_USE');
    assert.match((err as DnsError).message, `127.0.0.1:${c.port}`);
    assert.equal(other.addresses(), [], 'nothing left open after a failed listen');
    // TCP alone taken: the UDP socket opened first is closed again.
    const udpOnly = dgram.createSocket('udp4');
    await new Promise<void>((r) => udpOnly.bind(0, LOOPBACK, () => r()));
    const busyPort = udpOnly.address().port;
    try {
      await other.listen([{ address: LOOPBACK, port: busyPort }]);
      assert.unreachable('should not bind');
    } catch (e) {
      assert.is((e as DnsError).code, 'DNS_ERR_BIND_IN_USE');
    } finally {
      udpOnly.close();
    }
  } finally {
    await other.close();
    await c.server.close();
  }
});

s('a non-IP listen address is a clear error', async () => {
  const server = new DnsServer({
    recursor: new FakeRecursor(),
    packetCache: null,
    localZones: new LocalZones(),
    allow: new CidrSet(['127.0.0.0/8']),
    logger: createSilentLogger(),
    clock: new ManualClock(),
  });
  try {
    await server.listen([{ address: 'localhost', port: 0 }]);
    assert.unreachable('should throw');
  } catch (e) {
    assert.is((e as DnsError).code, 'DNS_ERR_BIND_ADDRESS');
  } finally {
    await server.close();
  }
});

s('the server applies udpBuffers to its UDP listeners (forced where it may), warns when not granted, and still answers', async () => {
  const { logger, lines } = capturingLogger();
  const recursor = new FakeRecursor();
  recursor.table.set('www.example.', [aRecord('www.example.', '192.0.2.1')]);
  const server = new DnsServer({
    recursor,
    packetCache: null,
    localZones: new LocalZones(),
    allow: new CidrSet(['127.0.0.0/8']),
    logger,
    clock: new ManualClock(),
    udpBuffers: { recvBytes: rmemMax() * 4 },
  });
  try {
    await server.listen([{ address: LOOPBACK, port: 0 }]);
    // The native path forces the size where the process may (root, as CI runs), as Unbound does;
    // dgram, or the native path without the privilege, is capped at rmem_max and warns.
    const forced = nativeUdp().module !== undefined && process.getuid?.() === 0;
    const warn = lines().find((l) => l.level === 'warn' && l.option === 'so-rcvbuf');
    if (forced) {
      assert.not.ok(warn, JSON.stringify(warn));
      const set = lines().find((l) => l.option === 'so-rcvbuf');
      assert.ok(Number(set?.got) >= rmemMax() * 4, JSON.stringify(set));
    } else {
      assert.ok(warn, JSON.stringify(lines()));
      assert.is(warn.requested, rmemMax() * 4);
      assert.match(String(warn.msg), 'net.core.rmem_max');
    }
    const port = server.addresses().find((a) => a.transport === 'udp')!.port;
    const reply = decodeReply(await udpQuery(port, buildQuery('www.example', 'A')));
    assert.equal(answerAddresses(reply), ['192.0.2.1']);
  } finally {
    await server.close();
  }
});

s('dig (a real client) gets answers over UDP, falls back to TCP on TC, and sees AA for local data', async () => {
  const dig = requirePeer('dig', 'dns-server dig');
  if (!dig) return;
  const c = await startServer();
  const run = promisify(execFile);
  try {
    // The server runs in this process, so dig must run asynchronously.
    const base = ['@127.0.0.1', '-p', String(c.port), '+tries=1', '+time=3'];
    const local = (await run(dig, [...base, 'localhost', 'A'])).stdout;
    assert.match(local, /status: NOERROR/);
    assert.match(local, /flags: qr aa rd ra/);
    assert.match(local, /localhost\.\s+\d+\s+IN\s+A\s+127\.0\.0\.1/);
    const big = (await run(dig, [...base, '+noedns', 'big.example', 'A'])).stdout;
    assert.match(big, /Truncated, retrying in TCP mode/);
    assert.is((big.match(/\sIN\s+A\s+198\.51\.100\./g) ?? []).length, 60);
    const nx = (await run(dig, [...base, '+tcp', 'nothing.example', 'MX'])).stdout;
    assert.match(nx, /status: NXDOMAIN/);
  } finally {
    await c.server.close();
  }
});

s.run();
