// The metrics HTTP endpoint on 127.0.0.1 (port 0): 200 with the exposition content type on GET
// /metrics, 404 elsewhere, 405 for other methods, 403 for clients outside metrics-allow.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import net from 'node:net';
import { MetricsServer } from '../../src/metrics/metrics-server.js';
import { CidrSet } from '../../src/util/cidr.js';
import { createSilentLogger } from '../../src/util/logger.js';

const s = suite('metrics/metrics-server');

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((done, fail) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => done({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }));
    });
    req.setTimeout(5000, () => req.destroy(new Error('timeout')));
    req.on('error', fail);
    req.end();
  });
}

s('serves /metrics to allowed clients only', async () => {
  let renders = 0;
  const srv = new MetricsServer({
    address: '127.0.0.1',
    port: 0,
    allow: new CidrSet(['127.0.0.0/8']),
    render: () => {
      renders++;
      return Promise.resolve('# TYPE x gauge\nx 1\n');
    },
    logger: createSilentLogger(),
  });
  const { port } = await srv.listen();
  try {
    const ok = await get(port, '/metrics');
    assert.is(ok.status, 200);
    assert.match(ok.type, /^text\/plain; version=0\.0\.4/);
    assert.is(ok.body, '# TYPE x gauge\nx 1\n');
    assert.is((await get(port, '/')).status, 404);
    assert.is((await get(port, '/metrics', 'POST')).status, 405);
    srv.setAllow(new CidrSet(['10.0.0.0/8']));
    assert.is((await get(port, '/metrics')).status, 403);
    assert.is(renders, 1, 'refused requests render nothing');
  } finally {
    await srv.close();
  }
});

s('idle connections are capped: a flood is closed at once and scrapes work after it', async () => {
  // Without a cap, connections that never send a request were held for ~30 s each: enough of
  // them used up the daemon's file descriptors, and DNS (SERVFAIL) and the policy service with it.
  const srv = new MetricsServer({
    address: '127.0.0.1',
    port: 0,
    allow: new CidrSet(['127.0.0.0/8']),
    render: () => Promise.resolve('x 1\n'),
    logger: createSilentLogger(),
  });
  const { port } = await srv.listen();
  const socks: net.Socket[] = [];
  let closed = 0;
  try {
    for (let i = 0; i < 200; i++) {
      const c = net.connect({ host: '127.0.0.1', port });
      c.on('error', () => undefined);
      c.on('close', () => closed++);
      socks.push(c);
    }
    for (let i = 0; i < 100 && closed < 150; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(closed >= 150, `only ${closed} of 200 idle connections closed`);
    for (const c of socks) c.destroy();
    await new Promise((r) => setTimeout(r, 50));
    assert.is((await get(port, '/metrics')).status, 200);
  } finally {
    for (const c of socks) c.destroy();
    await srv.close();
  }
});

s('a client pipelining requests is closed instead of having every response rendered and held', async () => {
  // Node parses a whole read of pipelined requests at once: one 64 kB read of GET /metrics lines
  // rendered ~1900 expositions and held them for a client that did not read (80 MB each).
  let renders = 0;
  const srv = new MetricsServer({
    address: '127.0.0.1',
    port: 0,
    allow: new CidrSet(['127.0.0.0/8']),
    render: () => {
      renders++;
      return Promise.resolve(`${'x 1\n'.repeat(10_000)}`);
    },
    logger: createSilentLogger(),
  });
  const { port } = await srv.listen();
  const c = net.connect({ host: '127.0.0.1', port });
  try {
    c.on('error', () => undefined);
    const closed = new Promise<void>((done) => c.once('close', () => done()));
    await new Promise<void>((done) => c.once('connect', () => done()));
    c.pause();
    c.write('GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(2000));
    await Promise.race([closed, new Promise((r) => setTimeout(r, 1000))]);
    assert.ok(c.destroyed || c.readableEnded, 'connection closed by the server');
    assert.ok(renders <= 2, `${renders} expositions rendered`);
    assert.is((await get(port, '/metrics')).status, 200, 'one request per connection at a time still works');
  } finally {
    c.destroy();
    await srv.close();
  }
});

s.run();
