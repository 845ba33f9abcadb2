// One-off UDP DNS queries from the bench: readiness checks of the resolvers and cache warming.
// Called by bench/lib/resolver-instances.ts and bench/dns-bench.ts. Loopback targets only, every
// query bounded by a timeout, the socket closed on every path. Not a load generator (dnsperf is).
import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import * as dnsPacket from 'dns-packet';
import type { Clock } from '../../src/util/clock.js';
import { MxError } from '../../src/util/errors.js';

/** What came back. */
export interface ProbeAnswer {
  /** 'NOERROR', 'NXDOMAIN', 'SERVFAIL', ... */
  rcode: string;
  answers: number;
}

const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

function rcodeName(code: number): string {
  return RCODES[code] ?? `RCODE${code}`;
}

/** Sends one recursive query (RD=1) and waits for the matching answer; rejects on timeout. */
export function probe(server: string, port: number, name: string, type: string, timeoutMs: number): Promise<ProbeAnswer> {
  if (!server.startsWith('127.')) return Promise.reject(new MxError('BENCH_ERR_ADDRESS', `probe: refusing non-loopback ${server}`));
  const id = randomInt(0, 0x10000);
  const query = dnsPacket.encode({
    id, type: 'query', flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: type as dnsPacket.RecordType, class: 'IN' }],
  });
  return new Promise<ProbeAnswer>((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    let done = false;
    const finish = (err: Error | null, answer?: ProbeAnswer): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.close();
      if (err) reject(err);
      else if (answer) resolve(answer);
    };
    const timer = setTimeout(() => finish(new MxError('BENCH_ERR_TIMEOUT', `probe ${name} ${type} @${server}:${port}: no answer in ${timeoutMs} ms`)), timeoutMs);
    socket.on('error', (err) => finish(err));
    socket.on('message', (msg) => {
      let decoded: dnsPacket.Packet;
      try {
        decoded = dnsPacket.decode(msg);
      } catch (err) {
        finish(new MxError('BENCH_ERR_PROBE', `probe ${name}: undecodable answer: ${(err as Error).message}`, { cause: err }));
        return;
      }
      if (decoded.id !== id) return;
      finish(null, { rcode: rcodeName((decoded.flags ?? 0) & 0xf), answers: decoded.answers?.length ?? 0 });
    });
    socket.send(query, port, server, (err) => {
      if (err) finish(err);
    });
  });
}

/**
 * Probes until an answer arrives or `deadlineMs` of real time has passed (the resolver is still
 * starting). Returns the answer; rethrows the last error at the deadline, or at once if the process
 * reports that it exited.
 */
export async function waitForAnswer(
  server: string,
  port: number,
  name: string,
  type: string,
  opts: { deadlineMs: number; hasExited: () => boolean; clock: Clock },
): Promise<ProbeAnswer> {
  const { deadlineMs, hasExited, clock } = opts;
  const start = clock.nowMs();
  let last: unknown = null;
  for (let attempt = 0; attempt < 1000; attempt++) {
    if (hasExited()) break;
    try {
      return await probe(server, port, name, type, 500);
    } catch (err) {
      last = err;
    }
    if (clock.nowMs() - start > deadlineMs) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new MxError('BENCH_ERR_START', `no answer from ${server}:${port} (${hasExited() ? 'the process exited' : `after ${deadlineMs} ms`}): ${(last as Error | null)?.message ?? ''}`, { cause: last });
}
