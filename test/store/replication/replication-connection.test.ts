// Tests for one replication link over a loopback socket pair (plain TCP stands in for TLS here; the
// TLS-PSK handshake is covered by the replicator tests): ordered delivery, ping/pong kept internal,
// idle pings and the silence timeout on virtual time, the unread-queue bound, error classification
// (with a real TLS-PSK client against a server that is no replication listener).
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock } from '../../../src/util/clock.js';
import { StoreError } from '../../../src/util/errors.js';
import { ManualScheduler } from '../../../src/store/scheduler.js';
import { encodeFrame, FrameDecoder, type ReplicationMessage } from '../../../src/store/replication/frame-codec.js';
import { classifySocketError, pskClientOptions, ReplicationConnection } from '../../../src/store/replication/replication-connection.js';
import { derivePsk } from '../../../src/store/replication/replication-settings.js';
import { ReplicationErrorCode } from '../../../src/store/replication/replication-error-code.js';

const s = suite('store/replication/replication-connection');

interface Pair {
  conn: ReplicationConnection;
  raw: net.Socket;
  rawFrames: ReplicationMessage[];
  clock: ManualClock;
  scheduler: ManualScheduler;
  close(): Promise<void>;
}

/** A ReplicationConnection on one end of a loopback TCP pair, the raw socket on the other. */
async function pair(timeoutMs = 3000): Promise<Pair> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const raw = net.connect(port, '127.0.0.1');
  const inner = await accepted;
  const clock = new ManualClock(1_000_000);
  const scheduler = new ManualScheduler(clock);
  const conn = new ReplicationConnection(inner, { clock, scheduler, timeoutMs, peer: 'test-peer' });
  const rawFrames: ReplicationMessage[] = [];
  const decoder = new FrameDecoder();
  raw.on('data', (d: Buffer) => rawFrames.push(...decoder.push(d)));
  raw.on('error', () => undefined);
  return {
    conn,
    raw,
    rawFrames,
    clock,
    scheduler,
    async close() {
      conn.close(new StoreError(ReplicationErrorCode.CONNECTION, 'test over'));
      raw.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 20));

s('messages arrive in order; ping is answered inside, pong is swallowed', async () => {
  const p = await pair();
  try {
    p.raw.write(Buffer.concat([encodeFrame({ type: 'ack', upTo: 1 }), encodeFrame({ type: 'ping' }), encodeFrame({ type: 'pong' }), encodeFrame({ type: 'ack', upTo: 2 })]));
    assert.equal(await p.conn.receive(), { type: 'ack', upTo: 1 });
    assert.equal(await p.conn.receive(), { type: 'ack', upTo: 2 });
    await tick();
    assert.equal(p.rawFrames, [{ type: 'pong' }]);
    p.conn.send({ type: 'ack', upTo: 3 });
    await tick();
    assert.equal(p.rawFrames[1], { type: 'ack', upTo: 3 });
  } finally {
    await p.close();
  }
});

s('an idle link sends pings; a silent one is closed with STORE_ERR_REPL_TIMEOUT', async () => {
  const p = await pair(3000);
  try {
    p.scheduler.advanceMs(900);
    await tick();
    assert.equal(p.rawFrames, [], 'no ping before a third of the timeout idle');
    p.scheduler.advanceMs(300);
    await tick();
    assert.equal(p.rawFrames, [{ type: 'ping' }], 'ping after a third of the timeout idle, at the next check');
    const pending = p.conn.receive();
    p.scheduler.advanceMs(1800);
    const err = await pending.then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.instance(err, StoreError);
    assert.is((err as StoreError).code, ReplicationErrorCode.TIMEOUT);
    assert.not.ok(p.conn.isOpen());
    assert.is((await p.conn.closed()).code, ReplicationErrorCode.TIMEOUT);
  } finally {
    await p.close();
  }
});

s('a silent peer is closed within 1.1 timeouts of its last frame, whenever that came', async () => {
  const p = await pair(3000);
  try {
    p.scheduler.advanceMs(500);
    p.raw.write(encodeFrame({ type: 'ack', upTo: 1 }));
    assert.equal(await p.conn.receive(), { type: 'ack', upTo: 1 });
    // Last frame at +500: not closed before +3500, closed by +3800 (a check every 300 ms).
    p.scheduler.advanceMs(2800);
    await tick();
    assert.ok(p.conn.isOpen(), 'open before the timeout');
    p.scheduler.advanceMs(500);
    await tick();
    assert.not.ok(p.conn.isOpen(), 'closed within a tenth of the timeout after it');
    assert.is((await p.conn.closed()).code, ReplicationErrorCode.TIMEOUT);
  } finally {
    await p.close();
  }
});

s('a peer that keeps talking is never timed out', async () => {
  const p = await pair(3000);
  try {
    for (let i = 0; i < 6; i++) {
      p.raw.write(encodeFrame({ type: 'pong' }));
      await tick();
      p.scheduler.advanceMs(1000);
    }
    assert.ok(p.conn.isOpen());
  } finally {
    await p.close();
  }
});

s('more unread messages than the bound close the link, with an error frame to the peer', async () => {
  const p = await pair();
  try {
    p.raw.write(Buffer.concat(Array.from({ length: 40 }, (_, i) => encodeFrame({ type: 'ack', upTo: i }))));
    const reason = await p.conn.closed();
    assert.is(reason.code, ReplicationErrorCode.PROTOCOL);
    await tick();
    assert.is(p.rawFrames.at(-1)?.type, 'error');
  } finally {
    await p.close();
  }
});

s('garbage closes the link with a protocol error; send() afterwards throws the reason', async () => {
  const p = await pair();
  try {
    p.raw.write(Buffer.from([0, 0, 0, 2, 77, 0]));
    const reason = await p.conn.closed();
    assert.is(reason.code, ReplicationErrorCode.PROTOCOL);
    assert.throws(() => p.conn.send({ type: 'ping' }), (e: unknown) => (e as StoreError).code === ReplicationErrorCode.PROTOCOL);
  } finally {
    await p.close();
  }
});

s('TLS errors of a wrong key are classified as authentication failures', () => {
  const mac = Object.assign(new Error('sslv3 alert bad record mac'), { code: 'ERR_SSL_SSLV3_ALERT_BAD_RECORD_MAC' });
  assert.is(classifySocketError(mac, 'x').code, ReplicationErrorCode.AUTH);
  const dec = Object.assign(new Error('decryption failed or bad record mac'), { code: 'ERR_SSL_DECRYPTION_FAILED_OR_BAD_RECORD_MAC' });
  assert.is(classifySocketError(dec, 'x').code, ReplicationErrorCode.AUTH);
  const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
  assert.is(classifySocketError(refused, 'x').code, ReplicationErrorCode.CONNECTION);
  // A plain TLS client offers no PSK suite: not a peer with another key, so no key warning.
  const plain = Object.assign(new Error('no shared cipher'), { code: 'ERR_SSL_NO_SHARED_CIPHER' });
  assert.is(classifySocketError(plain, 'x').code, ReplicationErrorCode.CONNECTION);
});

s('a peer address that is no replication listener says so: a plain server that answers text, or closes', async () => {
  // Every other connection: closed at once, or answered with a line of text (a policy or SMTP port).
  let n = 0;
  const server = net.createServer((socket) => {
    const close = n++ % 2 === 0;
    socket.once('data', () => (close ? socket.destroy() : socket.end('500 not a replication listener\r\n')));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  try {
    for (let i = 0; i < 4; i++) {
      const err = await new Promise<unknown>((resolve) => {
        const socket = tls.connect(pskClientOptions('127.0.0.1', port, derivePsk(Buffer.alloc(32, 7)), 'a'));
        socket.on('error', resolve);
        socket.on('secureConnect', () => resolve(new Error('connected')));
      });
      const e = classifySocketError(err, 'connecting to b=127.0.0.1');
      assert.is(e.code, ReplicationErrorCode.CONNECTION);
      assert.match(e.message, /does not speak replication's TLS: is that address the peer's replication-listen/, String(err));
    }
  } finally {
    server.close();
  }
});

s.run();
