// Tests of the fake authoritative servers and the standard tree, through plain dns-packet queries
// (independent of our codec): referrals with glue, NXDOMAIN, NODATA, CNAME, DNAME, empty
// non-terminals, EDNS, truncation and the misbehaviours others' tests rely on. Loopback only.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import dgram from 'node:dgram';
import net from 'node:net';
import * as dnsPacket from 'dns-packet';
import { FakeAuthority, POISON_ADDRESS } from './fake-authority.js';
import { startHierarchy, standardTree, type FakeHierarchy } from './fake-hierarchy.js';
import { loggedHook } from './hook-errors.js';

interface AskOptions {
  tcp?: boolean;
  edns?: number | null;
  rd?: boolean;
  timeoutMs?: number;
}

let nextId = 1;

/** One dns-packet query; resolves with the decoded answer or null on timeout. */
async function ask(address: string, port: number, name: string, type: string, o: AskOptions = {}): Promise<dnsPacket.Packet | null> {
  const id = nextId++ & 0xffff;
  const edns = o.edns === undefined ? 1232 : o.edns;
  const packet: dnsPacket.Packet = {
    id, type: 'query', flags: o.rd ? dnsPacket.RECURSION_DESIRED : 0,
    questions: [{ name, type: type as 'A', class: 'IN' }],
    additionals: edns === null ? [] : [{ name: '.', type: 'OPT', udpPayloadSize: edns, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }],
  };
  const bytes = dnsPacket.encode(packet);
  const timeoutMs = o.timeoutMs ?? 1000;
  if (o.tcp) {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: address, port });
      let buf = Buffer.alloc(0);
      const timer = setTimeout(() => { sock.destroy(); resolve(null); }, timeoutMs);
      sock.on('error', (err) => { clearTimeout(timer); sock.destroy(); reject(err); });
      sock.on('connect', () => sock.write(Buffer.concat([Buffer.from([bytes.length >> 8, bytes.length & 0xff]), bytes])));
      sock.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          clearTimeout(timer);
          sock.destroy();
          resolve(dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0))));
        }
      });
    });
  }
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    const timer = setTimeout(() => { sock.close(); resolve(null); }, timeoutMs);
    sock.on('error', (err) => { clearTimeout(timer); sock.close(); reject(err); });
    sock.on('message', (msg) => {
      clearTimeout(timer);
      sock.close();
      resolve(dnsPacket.decode(msg));
    });
    sock.send(bytes, port, address);
  });
}

const rcode = (p: dnsPacket.Packet | null): string | undefined => (p as { rcode?: string } | null)?.rcode;
const aa = (p: dnsPacket.Packet | null): boolean => ((p?.flags ?? 0) & dnsPacket.AUTHORITATIVE_ANSWER) !== 0;
const tc = (p: dnsPacket.Packet | null): boolean => ((p?.flags ?? 0) & dnsPacket.TRUNCATED_RESPONSE) !== 0;
const ttlOf = (r: dnsPacket.Answer | undefined): number | undefined => (r as { ttl?: number } | undefined)?.ttl;
const summary = (rrs: dnsPacket.Answer[] | undefined): string[] =>
  (rrs ?? []).filter((r) => r.type !== 'OPT').map((r) => `${r.name} ${r.type} ${typeof r.data === 'string' ? r.data : JSON.stringify(r.data)}`);

const s = suite<{ h: FakeHierarchy }>('helpers/fake-authority');

s.before(loggedHook(async (ctx) => {
  ctx.h = await startHierarchy(standardTree());
}));

s.after(async (ctx) => {
  await ctx.h.stop();
});

s.before.each(async (ctx) => {
  for (const srv of ctx.h.servers) if (srv.address !== '127.53.4.1') await srv.setBehaviour('normal');
  ctx.h.clearQueries();
});

const at = (ctx: { h: FakeHierarchy }, address: string): [string, number] => [address, ctx.h.server(address).port];

s('root: priming answer with glue, referral to com. with glue', async (ctx) => {
  const prime = await ask(...at(ctx, '127.53.0.1'), '.', 'NS');
  assert.ok(aa(prime));
  assert.equal(summary(prime?.answers).sort(), ['. NS a.root-servers.net', '. NS b.root-servers.net']);
  assert.equal(summary(prime?.additionals).sort(), ['a.root-servers.net A 127.53.0.1', 'b.root-servers.net A 127.53.0.2']);
  const ref = await ask(...at(ctx, '127.53.0.2'), 'www.example.com', 'A');
  assert.is(rcode(ref), 'NOERROR');
  assert.not.ok(aa(ref));
  assert.is(ref?.answers?.length, 0);
  assert.equal(summary(ref?.authorities).sort(), ['com NS a.gtld-servers.net', 'com NS b.gtld-servers.net']);
  assert.equal(summary(ref?.additionals).sort(), ['a.gtld-servers.net A 127.53.1.1', 'b.gtld-servers.net A 127.53.1.2']);
});

s('com.: referral to example.com. with in-bailiwick glue only', async (ctx) => {
  const ref = await ask(...at(ctx, '127.53.1.1'), 'www.example.com', 'A');
  assert.not.ok(aa(ref));
  assert.equal(summary(ref?.authorities).sort(), ['example.com NS ns1.example.com', 'example.com NS ns2.example.net']);
  assert.equal(summary(ref?.additionals), ['ns1.example.com A 127.53.2.1']);
  const log = ctx.h.server('127.53.1.1').queries;
  assert.is(log.length, 1);
  assert.is(log[0]?.name, 'www.example.com.');
  assert.is(log[0]?.type, 'A');
});

s('example.com.: AA answer, the question case echoed, both servers agree', async (ctx) => {
  for (const address of ['127.53.2.1', '127.53.2.2']) {
    const res = await ask(...at(ctx, address), 'wWw.Example.COM', 'A');
    assert.ok(aa(res));
    assert.is(res?.questions?.[0]?.name, 'wWw.Example.COM');
    assert.equal(summary(res?.answers), ['wWw.Example.COM A 192.0.2.1']);
  }
});

s('NXDOMAIN and NODATA carry the SOA with the RFC 2308 negative TTL', async (ctx) => {
  const nx = await ask(...at(ctx, '127.53.2.1'), 'nope.example.com', 'A');
  assert.is(rcode(nx), 'NXDOMAIN');
  assert.ok(aa(nx));
  assert.is(nx?.authorities?.[0]?.type, 'SOA');
  assert.is(ttlOf(nx?.authorities?.[0]), 300);
  const nodata = await ask(...at(ctx, '127.53.2.1'), 'www.example.com', 'MX');
  assert.is(rcode(nodata), 'NOERROR');
  assert.is(nodata?.answers?.length, 0);
  assert.is(nodata?.authorities?.[0]?.type, 'SOA');
});

s('empty non-terminal: NODATA, but NXDOMAIN from the rbldnsd-like DNSBL server', async (ctx) => {
  const ent = await ask(...at(ctx, '127.53.2.1'), 'ent.example.com', 'A');
  assert.is(rcode(ent), 'NOERROR');
  assert.is(ent?.answers?.length, 0);
  const below = await ask(...at(ctx, '127.53.2.1'), 'host.ent.example.com', 'A');
  assert.equal(summary(below?.answers), ['host.ent.example.com A 192.0.2.30']);
  const dnsblEnt = await ask(...at(ctx, '127.53.4.1'), '127.dnsbl.example.net', 'A');
  assert.is(rcode(dnsblEnt), 'NXDOMAIN');
  assert.is(ttlOf(dnsblEnt?.authorities?.[0]), 60);
});

s('DNSBL: listed address with A and TXT, unlisted NXDOMAIN', async (ctx) => {
  const listed = await ask(...at(ctx, '127.53.4.1'), '2.0.0.127.dnsbl.example.net', 'A');
  assert.equal(summary(listed?.answers), ['2.0.0.127.dnsbl.example.net A 127.0.0.2']);
  const txt = await ask(...at(ctx, '127.53.4.1'), '2.0.0.127.dnsbl.example.net', 'TXT');
  const data = (txt?.answers?.[0] as { data?: Buffer[] } | undefined)?.data ?? [];
  assert.match(Buffer.concat(data).toString('latin1'), /^Listed: test entry/);
  assert.is(rcode(await ask(...at(ctx, '127.53.4.1'), '1.0.0.127.dnsbl.example.net', 'A')), 'NXDOMAIN');
});

s('CNAME chain chased within the zone; a CNAME out of the zone stops there', async (ctx) => {
  const chain = await ask(...at(ctx, '127.53.2.1'), 'alias.example.com', 'A');
  assert.ok(aa(chain));
  assert.equal(summary(chain?.answers), [
    'alias.example.com CNAME alias2.example.com', 'alias2.example.com CNAME www.example.com', 'www.example.com A 192.0.2.1',
  ]);
  const ext = await ask(...at(ctx, '127.53.2.1'), 'ext.example.com', 'A');
  assert.equal(summary(ext?.answers), ['ext.example.com CNAME www.example.net']);
  const own = await ask(...at(ctx, '127.53.2.1'), 'alias.example.com', 'CNAME');
  assert.equal(summary(own?.answers), ['alias.example.com CNAME alias2.example.com']);
});

s('DNAME: the DNAME plus a synthesized CNAME (RFC 6672)', async (ctx) => {
  const res = await ask(...at(ctx, '127.53.2.1'), 'www.legacy.example.com', 'A');
  assert.ok(aa(res));
  assert.equal(summary(res?.answers), ['legacy.example.com DNAME example.net', 'www.legacy.example.com CNAME www.example.net']);
});

s('example.net.: the out-of-bailiwick NS name of example.com. and the DNSBL delegation', async (ctx) => {
  const ns2 = await ask(...at(ctx, '127.53.3.1'), 'ns2.example.net', 'A');
  assert.equal(summary(ns2?.answers), ['ns2.example.net A 127.53.2.2']);
  const ref = await ask(...at(ctx, '127.53.3.1'), '2.0.0.127.dnsbl.example.net', 'A');
  assert.not.ok(aa(ref));
  assert.equal(summary(ref?.authorities), ['dnsbl.example.net NS ns.dnsbl.example.net']);
  assert.equal(summary(ref?.additionals), ['ns.dnsbl.example.net A 127.53.4.1']);
});

s('unknown zone: REFUSED; RD is echoed', async (ctx) => {
  const res = await ask(...at(ctx, '127.53.2.1'), 'www.example.org', 'A', { rd: true });
  assert.is(rcode(res), 'REFUSED');
  assert.ok(((res?.flags ?? 0) & dnsPacket.RECURSION_DESIRED) !== 0);
});

s('EDNS echoed when asked; UDP answers truncated to the client size; TCP whole', async () => {
  const big = new FakeAuthority({
    address: '127.53.100.20',
    zones: [{ origin: 'big.test.', records: ['@ 60 IN SOA ns. h. 1 1 1 1 60', ...Array.from({ length: 12 }, (_, i) => `txt 60 IN TXT "${'x'.repeat(60)}${i}"`)] }],
  });
  await big.start();
  try {
    const withEdns = await ask('127.53.100.20', big.port, 'txt.big.test', 'TXT');
    assert.not.ok(tc(withEdns));
    assert.is(withEdns?.answers?.length, 12);
    assert.ok(withEdns?.additionals?.some((r) => r.type === 'OPT'));
    const plain = await ask('127.53.100.20', big.port, 'txt.big.test', 'TXT', { edns: null });
    assert.ok(tc(plain));
    assert.is(plain?.answers?.length, 0);
    assert.not.ok(plain?.additionals?.some((r) => r.type === 'OPT'));
    const tcp = await ask('127.53.100.20', big.port, 'txt.big.test', 'TXT', { edns: null, tcp: true });
    assert.not.ok(tc(tcp));
    assert.is(tcp?.answers?.length, 12);
  } finally {
    await big.stop();
  }
});

s('misbehaviours: refused, servfail, drop, no-aa, formerr-edns, truncate-udp', async (ctx) => {
  const srv = ctx.h.server('127.53.2.1');
  await srv.setBehaviour('refused');
  assert.is(rcode(await ask(...at(ctx, '127.53.2.1'), 'www.example.com', 'A')), 'REFUSED');
  await srv.setBehaviour('servfail');
  assert.is(rcode(await ask(...at(ctx, '127.53.2.1'), 'www.example.com', 'A')), 'SERVFAIL');
  await srv.setBehaviour('drop');
  assert.is(await ask(...at(ctx, '127.53.2.1'), 'www.example.com', 'A', { timeoutMs: 150 }), null);
  assert.is(srv.queries.length, 3, 'dropped queries are still logged');
  await srv.setBehaviour('no-aa');
  const noAa = await ask(...at(ctx, '127.53.2.1'), 'www.example.com', 'A');
  assert.not.ok(aa(noAa));
  assert.is(noAa?.answers?.length, 1);
  await srv.setBehaviour(['formerr-edns', 'no-aa']);
  assert.is(rcode(await ask(...at(ctx, '127.53.2.1'), 'www.example.com', 'A')), 'FORMERR');
  assert.is(rcode(await ask(...at(ctx, '127.53.2.1'), 'www.example.com', 'A', { edns: null })), 'NOERROR');
  await srv.setBehaviour('notimp-edns');
  assert.is(rcode(await ask(...at(ctx, '127.53.2.1'), 'www.example.com', 'A')), 'NOTIMP');
  await srv.setBehaviour('truncate-udp');
  const udp = await ask(...at(ctx, '127.53.2.1'), 'www.example.com', 'A');
  assert.ok(tc(udp));
  assert.is(udp?.answers?.length, 0);
  const tcp = await ask(...at(ctx, '127.53.2.1'), 'www.example.com', 'A', { tcp: true });
  assert.not.ok(tc(tcp));
  assert.is(tcp?.answers?.length, 1);
});

s('misbehaviours: upward referral, out-of-bailiwick poison, wrong question, case mismatch, delay', async (ctx) => {
  const srv = ctx.h.server('127.53.2.1');
  await srv.setBehaviour('upward-referral');
  const up = await ask(...at(ctx, '127.53.2.1'), 'www.example.com', 'A');
  assert.not.ok(aa(up));
  assert.equal(summary(up?.authorities).sort(), ['. NS a.root-servers.net', '. NS b.root-servers.net']);
  await srv.setBehaviour('out-of-bailiwick');
  const poisoned = await ask(...at(ctx, '127.53.2.1'), 'www.example.com', 'A');
  assert.equal(summary(poisoned?.answers), ['www.example.com A 192.0.2.1']);
  const extra = summary(poisoned?.additionals);
  assert.ok(extra.includes(`www.example.net A ${POISON_ADDRESS}`));
  assert.not.ok(extra.some((r) => r.startsWith('www.example.com ')), 'in-zone names are never poisoned');
  assert.ok(summary(poisoned?.authorities).includes(`ns2.example.net A ${POISON_ADDRESS}`));
  await srv.setBehaviour('wrong-question');
  assert.is.not((await ask(...at(ctx, '127.53.2.1'), 'www.example.com', 'A'))?.questions?.[0]?.name, 'www.example.com');
  await srv.setBehaviour('case-mismatch');
  assert.is((await ask(...at(ctx, '127.53.2.1'), 'WWW.example.com', 'A'))?.questions?.[0]?.name, 'www.example.com');
  assert.is((await ask(...at(ctx, '127.53.2.1'), 'WWW.example.com', 'A', { tcp: true }))?.questions?.[0]?.name, 'WWW.example.com');
  await srv.setBehaviour({ delayMs: 150 });
  assert.is(await ask(...at(ctx, '127.53.2.1'), 'www.example.com', 'A', { timeoutMs: 50 }), null);
  assert.ok(await ask(...at(ctx, '127.53.2.1'), 'www.example.com', 'A', { timeoutMs: 1000 }));
});

s('closed: the port refuses, then serves again after reopening on the same port', async (ctx) => {
  const srv = ctx.h.server('127.53.3.1');
  const port = srv.port;
  await srv.setBehaviour('closed');
  let refused = '';
  try {
    await ask('127.53.3.1', port, 'www.example.net', 'A', { tcp: true });
  } catch (err) {
    refused = String((err as NodeJS.ErrnoException).code);
  }
  assert.is(refused, 'ECONNREFUSED');
  await srv.setBehaviour('normal');
  assert.is(srv.port, port);
  assert.equal(summary((await ask('127.53.3.1', port, 'www.example.net', 'A'))?.answers), ['www.example.net A 192.0.2.20']);
});

s('hierarchy: root hints text and a loopback-only portFor', (ctx) => {
  assert.match(ctx.h.rootHints, /^\.\s+3600000\s+NS\s+a\.root-servers\.net\.$/m);
  assert.match(ctx.h.rootHints, /^b\.root-servers\.net\.\s+3600000\s+A\s+127\.53\.0\.2$/m);
  assert.is(ctx.h.portFor('127.53.1.2', 53), ctx.h.server('127.53.1.2').port);
  assert.is(ctx.h.portFor(POISON_ADDRESS, 53), 53);
  assert.throws(() => ctx.h.portFor('198.41.0.4', 53), /non-loopback/);
  assert.throws(() => ctx.h.server('127.53.9.9'), /no server/);
});

s('zone data errors are caught when the server is built', () => {
  assert.throws(() => new FakeAuthority({ address: '127.53.100.30', zones: [{ origin: 'a.test.', records: ['www 60 IN A 192.0.2.1'] }] }), /no SOA/);
  assert.throws(() => new FakeAuthority({ address: '127.53.100.30', zones: [{ origin: 'a.test.', records: ['www.b.test. 60 IN A 192.0.2.1'] }] }), /outside/);
  assert.throws(() => new FakeAuthority({ address: '192.0.2.1', zones: [] }), /loopback/);
});

s.run();
