// The RTT-observing transport passes queries, answers and errors through and counts each answer's
// RTT in the UDP or TCP histogram.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { Transport, UpstreamResponse } from '../../src/dns/transport/transport.js';
import { RttObservingTransport } from '../../src/metrics/rtt-transport.js';
import { DnsError } from '../../src/util/errors.js';

const s = suite('metrics/rtt-transport');

s('observes rttMs by transport and passes errors through', async () => {
  const answers: Array<UpstreamResponse | Error> = [
    { message: {} as UpstreamResponse['message'], rttMs: 20, size: 100, tcp: false },
    { message: {} as UpstreamResponse['message'], rttMs: 300, size: 100, tcp: true },
    new DnsError('DNS_ERR_TIMEOUT', 'timed out'),
  ];
  const inner: Transport = {
    query: () => {
      const a = answers.shift()!;
      return a instanceof Error ? Promise.reject(a) : Promise.resolve(a);
    },
  };
  const t = new RttObservingTransport(inner);
  const q = { name: 'example.', type: 1, class: 1 };
  const opts = { tcp: false, edns: true, timeoutMs: 1000 };
  assert.is((await t.query({ address: '127.0.0.1', port: 53 }, q, opts)).rttMs, 20);
  await t.query({ address: '127.0.0.1', port: 53 }, q, opts);
  await t.query({ address: '127.0.0.1', port: 53 }, q, opts).then(
    () => assert.unreachable('error swallowed'),
    (err: unknown) => assert.is((err as DnsError).code, 'DNS_ERR_TIMEOUT'),
  );
  assert.is(t.udpRtt.snapshot().count, 1);
  assert.ok(Math.abs(t.udpRtt.snapshot().sumSec - 0.02) < 1e-9);
  assert.is(t.tcpRtt.snapshot().count, 1);
});

s.run();
