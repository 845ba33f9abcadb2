// Tests for the policy TCP server on 127.0.0.1 port 0: persistent and pipelined connections,
// limits and garbage, connection cap, failing decide(), graceful drain, idle timeout, steps 1-6 wired.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { connect, type Socket } from 'node:net';
import { createHeloChecks } from '../../src/policy/checks/helo-check.js';
import { KnownNetworksCheck } from '../../src/policy/checks/known-networks-check.js';
import { RecipientCheck } from '../../src/policy/checks/recipient-check.js';
import { SaslCheck } from '../../src/policy/checks/sasl-check.js';
import { SenderCheck } from '../../src/policy/checks/sender-check.js';
import { PolicyPipeline } from '../../src/policy/pipeline.js';
import { PolicyServer, parseListenTarget, type DecideFn } from '../../src/policy/server.js';
import { CidrTable } from '../../src/policy/tables/cidr-table.js';
import { RecipientTable } from '../../src/policy/tables/recipient-table.js';
import { ManualClock } from '../../src/util/clock.js';
import type { Decision, PolicyRequest } from '../../src/policy/types.js';
import { PolicyError } from '../../src/util/errors.js';
import { createSilentLogger } from '../../src/util/logger.js';
import { capturingLogger } from '../helpers/capturing-logger.js';
import { encodeRequest, postfixRequest } from './fixtures.js';

const s = suite('policy/server');

const WAIT_MS = 2000; // upper bound for any single socket wait; tests normally take a few ms

function decision(action: string): Decision {
  return { action, step: 11, stepName: 'accept', reason: 'test', elapsedMs: 0 };
}

/** A loopback client that collects replies and notices when the server closes. */
class Client {
  readonly socket: Socket;
  private buffer = '';
  private waiters: Array<() => void> = [];
  closed = false;
  readonly closedP: Promise<void>;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.buffer += d;
      this.wake();
    });
    socket.on('error', () => undefined); // resets are expected in the close tests; 'close' follows
    this.closedP = new Promise((resolve) => socket.once('close', () => {
      this.closed = true;
      this.wake();
      resolve();
    }));
  }

  static open(port: number, host = '127.0.0.1'): Promise<Client> {
    return new Promise((resolve, reject) => {
      const sock = connect({ host, port }, () => resolve(new Client(sock)));
      sock.once('error', reject);
    });
  }

  send(text: string | Buffer): void {
    this.socket.write(text);
  }

  /** Waits for n complete replies ("action=...\n\n") and returns their actions. */
  async replies(n: number): Promise<string[]> {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const parts = this.buffer.split('\n\n').filter((p) => p !== '');
      if (parts.length >= n && this.buffer.endsWith('\n\n')) {
        this.buffer = '';
        return parts.map((p) => p.replace(/^action=/, ''));
      }
      if (this.closed) throw new Error(`connection closed after ${parts.length} of ${n} replies`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${n} replies; have ${JSON.stringify(this.buffer)}`);
      await this.next();
    }
  }

  /** Resolves when the server has closed the connection; fails after WAIT_MS. */
  async waitClosed(): Promise<string> {
    await Promise.race([this.closedP, new Promise((_, reject) => setTimeout(() => reject(new Error('connection not closed')), WAIT_MS).unref())]);
    return this.buffer;
  }

  end(): void {
    this.socket.destroy();
  }

  private next(): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, 50);
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

async function start(decide: DecideFn, opts: ConstructorParameters<typeof PolicyServer>[2] = {}): Promise<{ server: PolicyServer; port: number }> {
  const server = new PolicyServer(decide, createSilentLogger(), opts);
  const [addr] = await server.listen(['127.0.0.1:0']);
  const port = Number(/:(\d+)$/.exec(addr ?? '')?.[1]);
  return { server, port };
}

const echoRecipient: DecideFn = async (req: PolicyRequest) => decision(`DUNNO ${req.recipient ?? ''}`);

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve: (v: T) => void = () => undefined;
  const promise = new Promise<T>((r) => { resolve = r; });
  return { promise, resolve };
}

s('persistent connection: three sequential requests on one socket', async () => {
  const { server, port } = await start(echoRecipient);
  const c = await Client.open(port);
  try {
    for (const rcpt of ['a@example.org', 'b@example.org', 'c@example.org']) {
      c.send(encodeRequest(postfixRequest({ recipient: rcpt })));
      assert.equal(await c.replies(1), [`DUNNO ${rcpt}`]);
    }
    assert.is(c.closed, false, 'never closed after a reply');
    assert.is(server.stats().requests, 3);
    assert.is(server.stats().connectionsAccepted, 1);
  } finally {
    c.end();
    await server.close();
  }
});

s('pipelined requests are decided one at a time and answered in order', async () => {
  const gates = [deferred<void>(), deferred<void>(), deferred<void>()];
  let active = 0;
  let maxActive = 0;
  let calls = 0;
  const decide: DecideFn = async (req) => {
    const i = calls++;
    active++;
    maxActive = Math.max(maxActive, active);
    await gates[i]!.promise;
    active--;
    return decision(`DUNNO ${req.recipient ?? ''}`);
  };
  const { server, port } = await start(decide);
  const c = await Client.open(port);
  try {
    const wire = ['1@x.example', '2@x.example', '3@x.example'].map((r) => encodeRequest(postfixRequest({ recipient: r }))).join('');
    // Split mid-request too: the second half completes requests two and three.
    c.send(wire.slice(0, 700));
    await new Promise((r) => setTimeout(r, 10));
    c.send(wire.slice(700));
    await new Promise((r) => setTimeout(r, 10));
    assert.is(calls, 1, 'second request waits for the first decision');
    gates[2]!.resolve();
    gates[1]!.resolve();
    gates[0]!.resolve();
    assert.equal(await c.replies(3), ['DUNNO 1@x.example', 'DUNNO 2@x.example', 'DUNNO 3@x.example']);
    assert.is(maxActive, 1);
  } finally {
    c.end();
    await server.close();
  }
});

s('over-long line closes only that connection; others keep being served', async () => {
  const { server, port } = await start(echoRecipient);
  const good = await Client.open(port);
  const bad = await Client.open(port);
  try {
    bad.send(`request=smtpd_access_policy\nsender=${'a'.repeat(5000)}`);
    assert.is(await bad.waitClosed(), '', 'closed without a reply');
    good.send(encodeRequest(postfixRequest({ recipient: 'still@example.org' })));
    assert.equal(await good.replies(1), ['DUNNO still@example.org']);
    assert.is(server.stats().protocolErrors, 1);
  } finally {
    good.end();
    await server.close();
  }
});

s('binary garbage closes the connection; a malformed request gets DUNNO and the connection stays', async () => {
  let calls = 0;
  const { server, port } = await start(async () => { calls++; return decision('REJECT should not be used'); });
  const c1 = await Client.open(port);
  const c2 = await Client.open(port);
  try {
    c1.send(Buffer.from([0x72, 0x00, 0xff, 0xfe, 0x0a, 0x0a]));
    await c1.waitClosed();
    c2.send('request=smtpd_access_policy\nno equals sign here\n\n');
    assert.equal(await c2.replies(1), ['DUNNO']);
    assert.is(c2.closed, false);
    assert.is(calls, 0, 'malformed requests are not decided');
    assert.is(server.stats().malformed, 1);
  } finally {
    c2.end();
    await server.close();
  }
});

s('a flood of malformed requests is answered, but logged within a budget with the rest counted', async () => {
  // One client sending blank lines made one warning each: 60000 of them per 60 kB read, which
  // the log could not write as fast, so the daemon's memory grew and its event loop stalled.
  const { logger, lines } = capturingLogger();
  const server = new PolicyServer(async () => decision('REJECT should not be used'), logger);
  const [addr] = await server.listen(['127.0.0.1:0']);
  const c = await Client.open(Number(/:(\d+)$/.exec(addr ?? '')?.[1]));
  try {
    c.send('\n'.repeat(2000));
    assert.is((await c.replies(2000)).length, 2000);
    assert.is(server.stats().malformed, 2000);
    c.send('no equals sign\n\n');
    await c.replies(1);
    const warned = lines().filter((l) => l.msg === 'malformed policy request; answering DUNNO');
    assert.ok(warned.length >= 1 && warned.length <= 60, `${warned.length} warnings for 2001 malformed requests`);
    assert.ok(warned.every((l) => typeof l.peer === 'string' && typeof l.problem === 'string'));
  } finally {
    c.end();
    await server.close();
  }
});

s('pipelined requests by the thousand do not hold the event loop: other work runs between small batches', async () => {
  // Answering every request of one 64 kB read in one go blocked the process (DNS included) for
  // seconds while one client kept sending blank lines.
  const { server, port } = await start(echoRecipient);
  const c = await Client.open(port);
  let done = false;
  let maxBurst = 0;
  let last = 0;
  const tick = (): void => {
    const now = server.stats().requests;
    maxBurst = Math.max(maxBurst, now - last);
    last = now;
    if (!done) setImmediate(tick);
  };
  try {
    tick();
    c.send('\n'.repeat(20000));
    assert.is((await c.replies(20000)).length, 20000);
    assert.ok(maxBurst <= 200, `${maxBurst} requests answered in one turn of the event loop`);
  } finally {
    done = true;
    c.end();
    await server.close();
  }
});

s('connection cap: an idle connection makes room for a new one, the longest idle first; one mid-request is kept', async () => {
  const { server, port } = await start(echoRecipient, { maxConnections: 3 });
  const a = await Client.open(port);
  const b = await Client.open(port);
  const c = await Client.open(port);
  try {
    // a: used, then idle the longest. b: connected and silent since (idle, but active later than
    // a). c: half a request sent, so not idle.
    a.send(encodeRequest(postfixRequest()));
    await a.replies(1);
    b.send(encodeRequest(postfixRequest()));
    await b.replies(1);
    c.send('request=smtpd_access_policy\n');
    for (let i = 0; i < 100 && server.stats().connectionsOpen < 3; i++) await new Promise((r) => setTimeout(r, 5));
    // Before, d was refused: three connections that sent nothing more held every slot for the
    // whole idle timeout (10 minutes by default).
    const d = await Client.open(port);
    d.send(encodeRequest(postfixRequest({ recipient: 'd@example.org' })));
    assert.equal(await d.replies(1), ['DUNNO d@example.org']);
    await a.closedP;
    assert.not.ok(b.closed, 'b was active after a');
    assert.not.ok(c.closed, 'c is mid-request');
    assert.is(server.stats().connectionsRefused, 0);
    // The next newcomer takes b's slot; c finishes its request and is answered.
    const e = await Client.open(port);
    e.send(encodeRequest(postfixRequest({ recipient: 'e@example.org' })));
    assert.equal(await e.replies(1), ['DUNNO e@example.org']);
    await b.closedP;
    c.send(encodeRequest(postfixRequest({ recipient: 'c@example.org' })).replace('request=smtpd_access_policy\n', ''));
    assert.equal(await c.replies(1), ['DUNNO c@example.org']);
    d.end();
    e.end();
  } finally {
    c.end();
    await server.close();
  }
});

s('connection cap: with every connection busy, new connections are closed at once', async () => {
  // Decisions wait for release(): a and b each have a request in flight, so neither is idle.
  let release = (): void => undefined;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const held: DecideFn = async (req) => {
    if (req.recipient === 'hold@example.org') await gate;
    return decision(`DUNNO ${req.recipient ?? ''}`);
  };
  const { server, port } = await start(held, { maxConnections: 2 });
  const a = await Client.open(port);
  const b = await Client.open(port);
  try {
    a.send(encodeRequest(postfixRequest({ recipient: 'hold@example.org' })));
    b.send(encodeRequest(postfixRequest({ recipient: 'hold@example.org' })));
    for (let i = 0; i < 100 && server.stats().requests < 2; i++) await new Promise((r) => setTimeout(r, 5));
    const c = await Client.open(port);
    assert.is(await c.waitClosed(), '');
    assert.is(server.stats().connectionsRefused, 1);
    release();
    await a.replies(1);
    await b.replies(1);
    a.end();
    await a.closedP;
    // The slot is free again once the server has seen the close.
    for (let i = 0; i < 50 && server.stats().connectionsOpen > 1; i++) await new Promise((r) => setTimeout(r, 5));
    const d = await Client.open(port);
    d.send(encodeRequest(postfixRequest({ recipient: 'd@example.org' })));
    assert.equal(await d.replies(1), ['DUNNO d@example.org']);
    d.end();
  } finally {
    b.end();
    await server.close();
  }
});

s('a decide() that throws closes the connection without a reply; the server keeps serving', async () => {
  let n = 0;
  const { server, port } = await start(async (req) => {
    if (n++ === 0) throw new Error('store exploded');
    return decision(`DUNNO ${req.recipient ?? ''}`);
  });
  const c = await Client.open(port);
  try {
    c.send(encodeRequest(postfixRequest()));
    assert.is(await c.waitClosed(), '');
    assert.is(server.stats().internalErrors, 1);
    const c2 = await Client.open(port);
    c2.send(encodeRequest(postfixRequest({ recipient: 'ok@example.org' })));
    assert.equal(await c2.replies(1), ['DUNNO ok@example.org']);
    c2.end();
  } finally {
    await server.close();
  }
});

s('a decision whose action would inject protocol lines closes without reply', async () => {
  const { server, port } = await start(async () => decision('OK\n\naction=REJECT'));
  const c = await Client.open(port);
  try {
    c.send(encodeRequest(postfixRequest()));
    assert.is(await c.waitClosed(), '');
  } finally {
    await server.close();
  }
});

s('graceful close waits for the in-flight decision, answers it, then closes', async () => {
  const gate = deferred<void>();
  const started = deferred<void>();
  const { server, port } = await start(async (req) => {
    started.resolve();
    await gate.promise;
    return decision(`DUNNO ${req.recipient ?? ''}`);
  });
  const busy = await Client.open(port);
  const idle = await Client.open(port);
  busy.send(encodeRequest(postfixRequest({ recipient: 'inflight@example.org' })));
  await started.promise;
  let closedDone = false;
  const closing = server.close().then(() => { closedDone = true; });
  await idle.waitClosed();
  await new Promise((r) => setTimeout(r, 20));
  assert.is(closedDone, false, 'close() waits for the in-flight decision');
  assert.is(busy.closed, false);
  const refused = await Client.open(port).then((c) => { c.end(); return false; }, () => true);
  assert.ok(refused, 'no longer accepting');
  gate.resolve();
  assert.equal(await busy.replies(1), ['DUNNO inflight@example.org']);
  await busy.waitClosed();
  await closing;
  assert.is(closedDone, true);
});

s('close() destroys connections whose decision outlives the drain deadline', async () => {
  const { server, port } = await start(() => new Promise<Decision>(() => undefined));
  const c = await Client.open(port);
  c.send(encodeRequest(postfixRequest()));
  await new Promise((r) => setTimeout(r, 10));
  await server.close(30);
  await c.waitClosed();
  assert.is(server.stats().connectionsOpen, 0);
});

s('a client that half-closes after its request still gets the answer', async () => {
  const { server, port } = await start(echoRecipient);
  const c = await Client.open(port);
  try {
    c.socket.end(encodeRequest(postfixRequest({ recipient: 'fin@example.org' })));
    assert.equal(await c.replies(1), ['DUNNO fin@example.org']);
    await c.waitClosed();
  } finally {
    await server.close();
  }
});

s('idle connections are closed after idleTimeoutMs', async () => {
  const { server, port } = await start(echoRecipient, { idleTimeoutMs: 40 });
  const c = await Client.open(port);
  try {
    c.send(encodeRequest(postfixRequest()));
    await c.replies(1);
    await c.waitClosed();
    assert.is(server.stats().idleTimeouts, 1);
  } finally {
    await server.close();
  }
});

s('a client that never reads its replies is closed after idleTimeoutMs, like an idle one', async () => {
  // The server waited for 'drain' with no deadline: the connection (and its slot) was kept forever.
  const big = `DUNNO ${'x'.repeat(1 << 20)}`;
  const { server, port } = await start(async () => decision(big), { idleTimeoutMs: 200 });
  const c = await Client.open(port);
  try {
    c.socket.pause();
    c.send(Array.from({ length: 40 }, () => encodeRequest(postfixRequest())).join(''));
    for (let i = 0; i < 100 && server.stats().connectionsOpen > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.is(server.stats().connectionsOpen, 0, 'connection closed');
    assert.ok(server.stats().requests < 40, 'closed while replies were unread');
    assert.is(server.stats().idleTimeouts, 1);
  } finally {
    c.end();
    await server.close(500);
  }
});

s('one read of thousands of pipelined requests is parsed a slice at a time, as the queue has room', async () => {
  // A read was parsed whole: 64 kB of blank lines queued 65536 requests per connection, and 200
  // clients that did not read their replies grew the daemon by gigabytes.
  const { logger, lines } = capturingLogger();
  const big = `DUNNO ${'x'.repeat(1 << 20)}`;
  const server = new PolicyServer(async () => decision(big), logger, { idleTimeoutMs: 200 });
  const [addr] = await server.listen(['127.0.0.1:0']);
  const c = await Client.open(Number(/:(\d+)$/.exec(addr ?? '')?.[1]));
  try {
    c.socket.pause();
    c.send(encodeRequest(postfixRequest()).repeat(20) + '\n'.repeat(40000));
    for (let i = 0; i < 100 && server.stats().connectionsOpen > 0; i++) await new Promise((r) => setTimeout(r, 20));
    const closing = lines().find((l) => l.msg === 'policy client does not read its replies; closing');
    assert.ok(closing, 'closed for not reading');
    assert.ok(Number(closing.queued) <= 32 + 1024, `${String(closing.queued)} requests parsed and queued`);
  } finally {
    c.end();
    await server.close(500);
  }
});

s('a request begun and not finished within requestTimeoutMs closes the connection; split and pipelined ones are fine', async () => {
  const { server, port } = await start(echoRecipient, { requestTimeoutMs: 150 });
  const text = encodeRequest(postfixRequest({ recipient: 'slow@example.org' }));
  const ok = await Client.open(port);
  const slow = await Client.open(port);
  try {
    // A request in two pieces 50 ms apart, then a second one: answered, connection kept.
    ok.send(text.slice(0, 40));
    await new Promise((r) => setTimeout(r, 50));
    ok.send(text.slice(40) + text);
    assert.equal(await ok.replies(2), ['DUNNO slow@example.org', 'DUNNO slow@example.org']);
    // A trickle: a byte every 60 ms never finishes the request within 150 ms of its start.
    for (let i = 0; i < 5 && !slow.closed; i++) {
      slow.send(text.slice(i, i + 1));
      await new Promise((r) => setTimeout(r, 60));
    }
    await slow.waitClosed();
    assert.is(server.stats().requestTimeouts, 1);
    // The other connection is still served.
    ok.send(text);
    assert.equal(await ok.replies(1), ['DUNNO slow@example.org']);
  } finally {
    ok.end();
    await server.close();
  }
});

s('listens on several addresses; a busy port fails with POLICY_ERR_LISTEN and opens nothing', async () => {
  const server = new PolicyServer(echoRecipient, createSilentLogger());
  const bound = await server.listen(['127.0.0.1:0', { host: '127.0.0.2', port: 0 }]);
  assert.is(bound.length, 2);
  assert.match(bound[1] ?? '', /^127\.0\.0\.2:\d+$/);
  const { logger, lines } = capturingLogger();
  const other = new PolicyServer(echoRecipient, logger);
  try {
    await other.listen(['127.0.0.1:0', bound[0]!]);
    assert.unreachable('should fail');
  } catch (err) {
    assert.instance(err, PolicyError);
    assert.is((err as PolicyError).code, 'POLICY_ERR_LISTEN');
    // What to do about it, not only the errno: the usual holder is postgrey, still running.
    assert.match((err as PolicyError).message, `cannot listen on ${bound[0]}: the address is in use`);
    assert.match((err as PolicyError).message, 'systemctl disable --now postgrey');
    assert.match((err as PolicyError).message, '--policy-listen');
    // Reported once, by the caller's start-up error, not also as a listener error line.
    assert.equal(lines().filter((l) => l.level === 'error'), []);
  }
  await other.close();
  for (const addr of bound) {
    const [, host, port] = /^(.*):(\d+)$/.exec(addr) ?? [];
    const c = await Client.open(Number(port), host);
    c.send(encodeRequest(postfixRequest({ recipient: addr })));
    assert.equal(await c.replies(1), [`DUNNO ${addr}`]);
    c.end();
  }
  await server.close();
});

s('server + pipeline + steps 1-6 over one connection', async () => {
  const pipeline = new PolicyPipeline(
    [
      ...createHeloChecks(),
      new SenderCheck(),
      new RecipientCheck([RecipientTable.fromText('@example.org\nalice@example.com\n')]),
      new KnownNetworksCheck(CidrTable.parse('192.0.2.0/24\n')),
      new SaslCheck(),
    ],
    new ManualClock(),
    createSilentLogger(),
  );
  const { server, port } = await start((req) => pipeline.decide(req));
  const c = await Client.open(port);
  try {
    const cases: Array<[Record<string, string>, string]> = [
      [{ helo_name: '' }, '503 5.5.1 Error: send HELO/EHLO first'],
      [{ helo_name: 'localhost' }, '504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname'],
      [{ sender: 'root@localhost' }, '504 5.5.2 <root@localhost>: Sender address rejected: need fully-qualified address'],
      [{ recipient: 'bob@example.com' }, '550 5.1.1 User unknown'],
      [{ sender: '', client_address: '192.0.2.10' }, 'DUNNO'],
      [{ client_address: '203.0.113.1', sasl_username: 'alice' }, 'DUNNO'],
      [{ client_address: '203.0.113.1', protocol_state: 'DATA', helo_name: '' }, 'DUNNO'],
    ];
    c.send(cases.map(([o]) => encodeRequest(postfixRequest(o))).join(''));
    assert.equal(await c.replies(cases.length), cases.map(([, a]) => a));
    const steps = pipeline.stats().byStep.map((b) => `${b.step}:${b.verdict}`);
    assert.equal(steps, ['0:DUNNO', '1:REJECT', '2:REJECT', '3:REJECT', '4:REJECT', '5:DUNNO', '6:DUNNO']);
  } finally {
    c.end();
    await server.close();
  }
});

s('100 concurrent connections x 10 pipelined requests are all answered in order (bounded load)', async () => {
  const { server, port } = await start(async (req) => {
    await new Promise((r) => setImmediate(r));
    return decision(`DUNNO ${req.recipient ?? ''}`);
  });
  const started = Date.now();
  try {
    const clients = await Promise.all(Array.from({ length: 100 }, () => Client.open(port)));
    await Promise.all(clients.map(async (c, i) => {
      const rcpts = Array.from({ length: 10 }, (_, j) => `u${i}-${j}@example.org`);
      c.send(rcpts.map((r) => encodeRequest(postfixRequest({ recipient: r }))).join(''));
      assert.equal(await c.replies(10), rcpts.map((r) => `DUNNO ${r}`));
    }));
    assert.is(server.stats().requests, 1000);
    assert.ok(Date.now() - started < 5000, 'finished in bounded time');
    for (const c of clients) c.end();
  } finally {
    await server.close();
  }
});

s('parseListenTarget', () => {
  assert.equal(parseListenTarget('127.0.0.1:10023'), { host: '127.0.0.1', port: 10023 });
  assert.equal(parseListenTarget('[::1]:10023'), { host: '::1', port: 10023 });
  assert.equal(parseListenTarget('10023'), { host: '127.0.0.1', port: 10023 });
  for (const bad of ['::1:10023', '127.0.0.1', '127.0.0.1:70000', 'host:port', '']) {
    try {
      parseListenTarget(bad);
      assert.unreachable(bad);
    } catch (err) {
      assert.is((err as PolicyError).code, 'POLICY_ERR_BAD_LISTEN', bad);
    }
  }
});

s.run();
