// The control commands over real caches (ManualClock): flush by name, zone, infra and all, argument
// checks, the dump's zone-file lines, replication-status with and without a replication module.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { InfraCache } from '../../src/dns/cache/infra-cache.js';
import { RRsetCache, Trust } from '../../src/dns/cache/rrset-cache.js';
import { createControlHandlers, dumpCache, flushCache, type ControlTarget } from '../../src/control/control-commands.js';
import { ControlError } from '../../src/control/control-error.js';
import type { ControlRequest } from '../../src/control/control-server.js';
import { rdataFromText } from '../../src/dns/wire/rdata-from-text.js';
import { RRType } from '../../src/dns/wire/types.js';
import { ManualClock } from '../../src/util/clock.js';
import { createSilentLogger } from '../../src/util/logger.js';

const s = suite('control/control-commands');

/** A packet cache stand-in that records what was flushed (the real one needs encoded answers). */
class PacketLog {
  flushed: string[] = [];
  entries = 7;
  flushAll(): void {
    this.flushed.push('all');
    this.entries = 0;
  }
  flushName(n: string): number {
    this.flushed.push(`name ${n}`);
    return 1;
  }
  flushZone(z: string): number {
    this.flushed.push(`zone ${z}`);
    return 2;
  }
  stats(): { entries: number } {
    return { entries: this.entries };
  }
}

function target(): { t: ControlTarget; cache: RRsetCache; infra: InfraCache; packets: PacketLog; clock: ManualClock } {
  const clock = new ManualClock();
  const cache = new RRsetCache({ clock, maxBytes: 1 << 20, minTtlSec: 0, maxTtlSec: 86400, maxNegativeTtlSec: 3600, staleTtlSec: 0 });
  const put = (name: string, type: number, text: string, ttl = 300): void => {
    cache.putRRset({ name, type, class: 1, ttl, rdatas: [rdataFromText(type, text)] }, Trust.AnswerAuth);
  };
  put('www.example.com.', RRType.A, '192.0.2.1');
  put('www.example.com.', RRType.AAAA, '2001:db8::1');
  put('mail.example.com.', RRType.MX, '10 mx.example.com.');
  put('example.org.', RRType.A, '192.0.2.9');
  cache.putNegative('nxdomain', 'gone.example.org.', RRType.A, null, 60);
  const infra = new InfraCache({ clock });
  infra.recordRtt('192.0.2.53', 25);
  const packets = new PacketLog();
  const t: ControlTarget = {
    cache,
    packetCache: packets,
    infra,
    stats: () => Promise.reject(new Error('not used here')),
    reload: () => Promise.reject(new Error('not used here')),
    logger: createSilentLogger(),
  };
  return { t, cache, infra, packets, clock };
}

function req(args: Record<string, unknown> = {}): ControlRequest {
  return { command: 'cache-flush', ...args };
}

s('flush a name removes every type of exactly that name, in both caches', () => {
  const { t, cache, packets } = target();
  const r = flushCache(t, req({ name: 'WWW.Example.COM' }));
  assert.equal(r, { scope: 'name', target: 'WWW.Example.COM.', rrsets: 2, packets: 1 });
  assert.is(cache.getRRset('www.example.com.', RRType.A), undefined);
  assert.ok(cache.getRRset('mail.example.com.', RRType.MX), 'other names stay');
  assert.equal(packets.flushed, ['name WWW.Example.COM.']);
});

s('flush a zone removes everything at or below it', () => {
  const { t, cache } = target();
  const r = flushCache(t, req({ zone: 'example.com' }));
  assert.is(r.rrsets, 3);
  assert.ok(cache.getRRset('example.org.', RRType.A));
  assert.is(cache.getRRset('mail.example.com.', RRType.MX), undefined);
});

s('flush all empties both caches; flush infra forgets servers only', () => {
  const { t, cache, infra, packets } = target();
  const i = flushCache(t, req({ infra: true }));
  assert.equal(i, { scope: 'infra', hosts: 1 });
  assert.is(infra.stats().hosts, 0);
  assert.ok(cache.getRRset('example.org.', RRType.A), 'infra flush keeps records');
  const a = flushCache(t, req());
  assert.equal(a, { scope: 'all', rrsets: 5, packets: 7 });
  assert.is(cache.stats().entries, 0);
  assert.equal(packets.flushed, ['all']);
});

s('bad arguments are CONTROL_ERR_BAD_REQUEST', () => {
  const { t } = target();
  for (const args of [{ name: 'a.example.', zone: 'example.' }, { name: 5 }, { zone: '' }, { name: 'x'.repeat(70) + '.example.' }, { infra: 'yes' }, { infra: 1 }]) {
    try {
      flushCache(t, req(args));
      assert.unreachable(`accepted ${JSON.stringify(args)}`);
    } catch (err) {
      assert.instance(err, ControlError);
      assert.is((err as ControlError).code, 'CONTROL_ERR_BAD_REQUEST', JSON.stringify(args));
    }
  }
});

s('dump prints zone-file lines, negative answers and servers', () => {
  const { t, clock } = target();
  clock.advanceSec(100);
  const { lines } = dumpCache(t);
  assert.ok(lines.includes('www.example.com.\t200\tIN\tA\t192.0.2.1'), lines.join('\n'));
  assert.ok(lines.includes('mail.example.com.\t200\tIN\tMX\t10 mx.example.com.'));
  assert.ok(lines.some((l) => /^; nxdomain\tgone\.example\.org\.\t/.test(l)));
  assert.ok(lines.some((l) => l.startsWith('; 192.0.2.53\t25\t')), lines.join('\n'));
});

s('dump of a cache holding 200000 negative answers (a flood of random names) works', () => {
  // The negative lines were appended with one spread push: past ~120000 of them that overflowed
  // the stack and `mxsentry cache dump` failed with "Maximum call stack size exceeded".
  const { t } = target();
  const cache = new RRsetCache({ clock: new ManualClock(), maxBytes: 1 << 30, minTtlSec: 0, maxTtlSec: 86400, maxNegativeTtlSec: 3600, staleTtlSec: 0 });
  for (let i = 0; i < 200_000; i++) cache.putNegative('nxdomain', `r${i}.example.org.`, RRType.A, null, 60);
  const { lines } = dumpCache({ ...t, cache });
  assert.is(lines.filter((l) => l.startsWith('; nxdomain\t')).length, 200_000);
});

s('replication-status says "not configured" without a replication module', async () => {
  const { t } = target();
  const handlers = createControlHandlers(t);
  assert.equal(await handlers['replication-status']!({ command: 'replication-status' }), { configured: false, message: 'replication not configured' });
  const withRepl = createControlHandlers({ ...t, replicationStatus: () => Promise.resolve({ peers: [{ name: 'mx2', lagRecords: 3 }] }) });
  assert.equal(await withRepl['replication-status']!({ command: 'replication-status' }), { configured: true, status: { peers: [{ name: 'mx2', lagRecords: 3 }] } });
});

s.run();
