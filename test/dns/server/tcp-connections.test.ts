// The DNS server's TCP side (tcp-connections.ts) against real loopback sockets: RFC 7766 framing
// and pipelining, the idle timeout on the injected clock, the connection cap, and short messages.
// Every server and client socket is closed per test.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { Rcode, type Message } from '../../../src/dns/wire/types.js';
import { LOOPBACK, TcpClient, aRecord, answerAddresses, buildQuery, decodeReply, startServer, waitUntil } from './dns-test-client.js';

const s = suite('dns/server/tcp-connections');

s('TCP: three pipelined queries on one connection, answered out of order', async () => {
  const c = await startServer();
  const release = c.recursor.holdName('slow.example.');
  c.recursor.table.set('slow.example.', [aRecord('slow.example.', '192.0.2.50')]);
  const client = await TcpClient.connect(c.port);
  try {
    client.send(buildQuery('slow.example', 'A', { id: 1 }));
    client.send(buildQuery('www.example', 'A', { id: 2 }));
    client.send(buildQuery('nx.example', 'A', { id: 3 }));
    const firstTwo = await client.waitReplies(2);
    assert.equal(firstTwo.map((b) => decodeReply(b).id).sort(), [2, 3], 'fast answers do not wait for the slow one');
    release();
    const all = await client.waitReplies(3);
    const byId = new Map(all.map((b) => [decodeReply(b).id, decodeReply(b)]));
    assert.equal(answerAddresses(byId.get(1) as Message), ['192.0.2.50']);
    assert.equal(answerAddresses(byId.get(2) as Message), ['192.0.2.1']);
    assert.is(byId.get(3)?.rcode, Rcode.NXDOMAIN);
  } finally {
    client.close();
    await c.server.close();
  }
});

s('TCP: frames split at every byte and several frames in one write', async () => {
  const c = await startServer();
  const client = await TcpClient.connect(c.port);
  try {
    const q = buildQuery('www.example', 'A', { id: 11 });
    const framed = Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q]);
    for (let i = 0; i < framed.length; i++) {
      client.write(framed.subarray(i, i + 1));
      // Let each byte arrive on its own (a short real wait for the socket).
      await new Promise((r) => setTimeout(r, 1));
    }
    const [one] = await client.waitReplies(1);
    assert.is(decodeReply(one).id, 11);
    const q2 = buildQuery('www.example', 'A', { id: 12 });
    const q3 = buildQuery('nx.example', 'A', { id: 13 });
    const two = Buffer.concat([Buffer.from([0, q2.length]), q2, Buffer.from([0, q3.length]), q3]);
    client.write(two.subarray(0, 20));
    await new Promise((r) => setTimeout(r, 5));
    client.write(two.subarray(20));
    const replies = await client.waitReplies(3);
    assert.equal(replies.slice(1).map((b) => decodeReply(b).id).sort(), [12, 13]);
  } finally {
    client.close();
    await c.server.close();
  }
});

s('TCP: an idle connection is closed after tcpIdleTimeoutMs (by the injected clock)', async () => {
  const c = await startServer({ limits: { tcpIdleTimeoutMs: 10_000 } });
  const client = await TcpClient.connect(c.port);
  try {
    client.send(buildQuery('www.example'));
    await client.waitReplies(1);
    c.clock.advanceMs(9_000);
    assert.is(c.server.sweepIdleConnections(), 0, 'not yet idle long enough');
    assert.is(client.closed, false);
    c.clock.advanceMs(1_000);
    assert.is(c.server.sweepIdleConnections(), 1);
    await client.waitClosed();
    assert.is(c.server.stats().tcp.idleClosed, 1);
  } finally {
    client.close();
    await c.server.close();
  }
});

s('TCP: a frame trickled a byte at a time does not keep the connection from being idle', async () => {
  const c = await startServer({ limits: { tcpIdleTimeoutMs: 10_000 } });
  const client = await TcpClient.connect(c.port);
  try {
    const query = buildQuery('www.example');
    const frame = Buffer.alloc(2 + query.length);
    frame.writeUInt16BE(query.length, 0);
    query.copy(frame, 2);
    // One byte every 3 s of the clock: before, each byte counted as activity and the sweep never
    // closed it (a review held one open this way for as long as it liked).
    for (let i = 0; i < 4; i++) {
      client.socket.write(frame.subarray(i, i + 1));
      await new Promise((r) => setTimeout(r, 20));
      c.clock.advanceMs(3_000);
      assert.is(c.server.sweepIdleConnections(), i < 3 ? 0 : 1, `after byte ${i + 1}`);
    }
    await client.waitClosed();
  } finally {
    client.close();
    await c.server.close();
  }
});

s('TCP: a connection with a query in flight is not idle', async () => {
  const c = await startServer({ limits: { tcpIdleTimeoutMs: 1000 } });
  const release = c.recursor.holdName('slow.example.');
  const client = await TcpClient.connect(c.port);
  try {
    client.send(buildQuery('slow.example'));
    await waitUntil(() => c.server.queriesInFlight === 1);
    c.clock.advanceMs(5_000);
    assert.is(c.server.sweepIdleConnections(), 0);
    release();
    await client.waitReplies(1);
    c.clock.advanceMs(1_000);
    assert.is(c.server.sweepIdleConnections(), 1);
    await client.waitClosed();
  } finally {
    client.close();
    await c.server.close();
  }
});

s('TCP: at the connection cap the longest-idle connection is closed; all busy -> the new one is refused', async () => {
  const c = await startServer({ limits: { maxTcpConnections: 2 } });
  const a = await TcpClient.connect(c.port);
  a.send(buildQuery('www.example', 'A', { id: 1 }));
  await a.waitReplies(1);
  c.clock.advanceMs(1000);
  const b = await TcpClient.connect(c.port);
  b.send(buildQuery('www.example', 'A', { id: 2 }));
  await b.waitReplies(1);
  const clients = [a, b];
  try {
    const cc = await TcpClient.connect(c.port);
    clients.push(cc);
    await a.waitClosed();
    assert.is(b.closed, false, 'the more recently active connection stays');
    cc.send(buildQuery('www.example', 'A', { id: 3 }));
    assert.is(decodeReply((await cc.waitReplies(1))[0]).id, 3);
    assert.is(c.server.stats().tcp.evicted, 1);

    // Both remaining connections busy: a new one is closed at once.
    const release = c.recursor.holdName('slow.example.');
    b.send(buildQuery('slow.example', 'A', { id: 4 }));
    cc.send(buildQuery('slow.example', 'A', { id: 5 }));
    await waitUntil(() => c.server.queriesInFlight === 2);
    const d = await TcpClient.connect(c.port);
    clients.push(d);
    await d.waitClosed();
    assert.is(c.server.stats().tcp.rejected, 1);
    release();
    assert.is((await b.waitReplies(2)).length, 2);
    assert.is((await cc.waitReplies(2)).length, 2);
  } finally {
    for (const x of clients) x.close();
    await c.server.close();
  }
});

s('TCP: a message shorter than a header closes the connection at once (counted as dropped)', async () => {
  const c = await startServer();
  try {
    const socket = net.connect({ host: LOOPBACK, port: c.port });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const started = Date.now();
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write(Buffer.from([0, 1, 0x42]));
    await closed;
    assert.ok(Date.now() - started < 2000, 'closed at once, not at the idle timeout');
    assert.is(c.server.stats().dropped, 1);
  } finally {
    await c.server.close();
  }
});

s.run();
