// udp-endpoint.ts over both I/O paths, the native module (src/native/udp-io.c) and node:dgram, on
// loopback: datagrams delivered intact and kept by the receiver across batches, replies to the right
// client (IPv4 and IPv6), bind errors as the admin's messages, buffer sizes, close. The native
// module must be built under CI=true (.ci/run installs the compiler); elsewhere a missing one skips.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import dgram from 'node:dgram';
import { Worker } from 'node:worker_threads';
import { DnsError } from '../../../src/util/errors.js';
import { setUdpBuffers } from '../../../src/dns/server/listen-sockets.js';
import { nativeUdp, type UdpIo } from '../../../src/native/native-udp.js';
import { openUdpEndpoint, type UdpEndpoint } from '../../../src/dns/server/udp-endpoint.js';
import { skipTest } from '../../helpers/peers.js';
import { LOOPBACK, rmemMax } from './dns-test-client.js';

const s = suite('dns/server/udp-endpoint');

/** The paths to test: dgram always; native when built (a printed skip, or under CI a failure, when not). */
function paths(testName: string): UdpIo[] {
  const { module, problem } = nativeUdp();
  if (module) return ['native', 'dgram'];
  skipTest(`${testName} (native path)`, `the native UDP I/O module is ${problem ?? 'unavailable'}`);
  return ['dgram'];
}

/** Receives what a client socket gets, bounded. */
function collect(sock: dgram.Socket, n: number, timeoutMs = 2000): Promise<Buffer[]> {
  const got: Buffer[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`got ${got.length} of ${n} replies`)), timeoutMs);
    sock.on('message', (m) => {
      got.push(m);
      if (got.length === n) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
}

async function clientSocket(type: 'udp4' | 'udp6', address: string): Promise<dgram.Socket> {
  const sock = dgram.createSocket(type);
  await new Promise<void>((r) => sock.bind(0, address, () => r()));
  return sock;
}

s('the native module is built (CI builds it; elsewhere a missing compiler is a printed skip)', () => {
  const { module, problem } = nativeUdp();
  if (!module) return skipTest('native UDP I/O module', `it is ${problem ?? 'unavailable'}`);
  assert.is(module.BATCH, 16);
});

s('datagrams arrive intact and stay the receiver\'s across batches; each reply goes to its own client', async () => {
  for (const io of paths('udp-endpoint delivery')) {
    const ep = await openUdpEndpoint(LOOPBACK, 0, 4, io);
    assert.is(ep.io, io);
    const port = ep.address().port;
    const kept: Array<{ msg: Buffer; client: string }> = [];
    ep.start((msg, client, reply) => {
      kept.push({ msg, client });
      const answer = Buffer.from(msg);
      answer[0] = 0xaa;
      reply(answer);
    }, (err) => assert.unreachable(String(err)));
    const a = await clientSocket('udp4', LOOPBACK);
    const b = await clientSocket('udp4', '127.0.0.2');
    try {
      // More than one native batch (16), sizes from 2 bytes to a 60,000-byte datagram.
      const sizes = Array.from({ length: 40 }, (_, i) => (i === 39 ? 60_000 : 2 + i * 37));
      const sent = sizes.map((n, i) => Buffer.alloc(n, i + 1));
      const fromA = collect(a, 20);
      const fromB = collect(b, 20);
      sent.forEach((m, i) => (i % 2 === 0 ? a : b).send(m, port, LOOPBACK));
      const [ra, rb] = await Promise.all([fromA, fromB]);
      assert.is(kept.length, 40, io);
      // What the handler kept was not overwritten by later batches.
      const byFill = new Map(kept.map((k) => [k.msg[k.msg.length - 1]!, k]));
      sent.forEach((m, i) => {
        const k = byFill.get(i + 1);
        assert.ok(k, `${io}: datagram ${i} delivered`);
        assert.ok(k!.msg.equals(m), `${io}: datagram ${i} intact (${m.length} bytes)`);
        assert.is(k!.client, i % 2 === 0 ? LOOPBACK : '127.0.0.2', io);
      });
      // Each client got back exactly its own datagrams (first byte replaced).
      const fills = (rs: Buffer[]): number[] => rs.map((r) => r[r.length - 1]!).sort((x, y) => x - y);
      assert.equal(fills(ra), sent.map((_, i) => i + 1).filter((f) => f % 2 === 1), io);
      assert.equal(fills(rb), sent.map((_, i) => i + 1).filter((f) => f % 2 === 0), io);
      assert.ok(ra.every((r) => r[0] === 0xaa) && rb.every((r) => r[0] === 0xaa), io);
      assert.is(ra.find((r) => r.length === 60_000)?.length ?? rb.find((r) => r.length === 60_000)?.length, 60_000, io);
    } finally {
      a.close();
      b.close();
      await ep.close();
    }
  }
});

s('IPv6: the client address as Node writes it, and the reply reaches it', async () => {
  for (const io of paths('udp-endpoint IPv6')) {
    let ep: UdpEndpoint;
    try {
      ep = await openUdpEndpoint('::1', 0, 6, io);
    } catch (err) {
      skipTest('udp-endpoint IPv6', `no ::1 here (${String(err)})`, { evenInCi: true });
      return;
    }
    const clients: string[] = [];
    ep.start((msg, client, reply) => {
      clients.push(client);
      reply(msg);
    }, (err) => assert.unreachable(String(err)));
    const c = await clientSocket('udp6', '::1');
    try {
      const got = collect(c, 1);
      c.send(Buffer.from('ping'), ep.address().port, '::1');
      assert.is((await got)[0]!.toString(), 'ping');
      assert.equal(clients, ['::1'], io);
      assert.is(ep.address().family, 'IPv6');
    } finally {
      c.close();
      await ep.close();
    }
  }
});

s('bind errors are the admin\'s messages; buffer sizes are set and read back; replies after close are dropped', async () => {
  for (const io of paths('udp-endpoint errors')) {
    const ep = await openUdpEndpoint(LOOPBACK, 0, 4, io);
    const port = ep.address().port;
    const inUse = await openUdpEndpoint(LOOPBACK, port, 4, io).then(
      () => assert.unreachable('a second bind succeeded'),
      (err: unknown) => err,
    );
    assert.instance(inUse, DnsError);
    assert.is((inUse as DnsError).code, 'DNS_ERR_BIND_IN_USE', io);
    assert.match((inUse as DnsError).message, `${LOOPBACK}:${port}/udp`);
    const notHere = await openUdpEndpoint('192.0.2.77', 0, 4, io).catch((err: unknown) => err);
    assert.is((notHere as DnsError).code, 'DNS_ERR_BIND_ADDRESS', io);
    const [recv] = setUdpBuffers(ep.buffers, { recvBytes: 64 << 10, sendBytes: 0 });
    assert.ok(recv!.got! >= 64 << 10, `${io}: SO_RCVBUF ${recv!.got}`);
    assert.is(ep.buffers.getRecvBufferSize(), recv!.got);
    // Beyond net.core.rmem_max: dgram is capped at it; the native path, as Unbound, forces the size
    // when the process may (root, as CI runs), and is capped otherwise, which the outcome says.
    const beyond = rmemMax() * 4;
    const [big] = setUdpBuffers(ep.buffers, { recvBytes: beyond, sendBytes: 0 });
    if (io === 'native' && process.getuid?.() === 0) {
      assert.is(big!.problem, undefined, `${io}: ${big!.problem}`);
      assert.ok(big!.got! >= beyond, `${io}: SO_RCVBUFFORCE gave ${big!.got} for ${beyond}`);
    } else {
      assert.match(big!.problem ?? '', 'net.core.rmem_max');
    }
    let later: ((b: Buffer) => void) | undefined;
    const errors: Error[] = [];
    ep.start((_msg, _client, reply) => {
      later = reply;
    }, (err) => errors.push(err));
    const c = await clientSocket('udp4', LOOPBACK);
    c.send(Buffer.from('q'), port, LOOPBACK);
    for (let i = 0; i < 100 && !later; i++) await new Promise((r) => setTimeout(r, 5));
    assert.ok(later, `${io}: delivered`);
    await ep.close();
    later!(Buffer.from('late'));
    assert.equal(errors, [], `${io}: a reply after close is dropped quietly`);
    c.close();
  }
});

s('the native module in a worker thread: its own query context, and terminating the worker leaves this process running', async () => {
  const { module, problem } = nativeUdp();
  if (!module) return skipTest('udp-endpoint worker', `the native UDP I/O module is ${problem ?? 'unavailable'}`);
  const target = await clientSocket('udp4', LOOPBACK);
  target.on('message', (m, r) => target.send(m, r.port, r.address));
  const modulePath = new URL('../../../native/udp-io.node', import.meta.url).pathname;
  // Before: the query context was one static of the process, so a worker's callback aborted the
  // process (HandleScope), and the module unloaded with the worker under a pending uv_close (SIGSEGV).
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const m = require(workerData.modulePath);
    const h = m.udpOpen(4, '127.0.0.1', 0, false);
    m.udpStart(h, () => {});
    const q = m.udpQuery(4, '127.0.0.1', workerData.port, Buffer.from('ping'), (errno, answer) => {
      parentPort.postMessage(String(answer));
      m.udpQueryClose(q);
    });
  `;
  try {
    for (let i = 0; i < 3; i++) {
      const w = new Worker(code, { eval: true, workerData: { modulePath, port: target.address().port } });
      const answer = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`worker ${i}: no answer within 5 s`)), 5000);
        w.once('message', (m: string) => (clearTimeout(timer), resolve(m)));
        w.once('error', (e) => (clearTimeout(timer), reject(e)));
        w.once('exit', (c) => (clearTimeout(timer), reject(new Error(`worker ${i} exited ${c} before answering`))));
      });
      assert.is(answer, 'ping');
      await w.terminate();
    }
    // This thread's own queries still work after the workers went.
    const back = await new Promise<string>((resolve) => {
      const q = module.udpQuery(4, LOOPBACK, target.address().port, Buffer.from('pong'), (_e, a) => {
        module.udpQueryClose(q);
        resolve(String(a));
      });
    });
    assert.is(back, 'pong');
  } finally {
    target.close();
  }
});

s.run();
