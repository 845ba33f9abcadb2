// Builds the real DNS stack (caches, iterator, resolver, NetTransport) against a fake hierarchy
// on loopback, with config defaults plus overrides given like `serve` flags. Used by the resolver
// scenario tests, the policy DNS-list tests and the e2e helpers.
import { loadConfig } from '../../src/config/load.js';
import { createDnsStack, type DnsStack } from '../../src/main.js';
import { CountingTransport, NetTransport } from '../../src/dns/transport/transport.js';
import { parseZoneText } from '../../src/dns/wire/zone-text.js';
import type { Name } from '../../src/dns/wire/types.js';
import type { Clock } from '../../src/util/clock.js';
import { systemClock } from '../../src/util/clock.js';
import { createSilentLogger, type Logger } from '../../src/util/logger.js';
import { startHierarchy, standardTree, type FakeHierarchy, type HierarchySpec } from './fake-hierarchy.js';

export interface Harness {
  h: FakeHierarchy;
  stack: DnsStack;
  counting: CountingTransport;
  stop(): Promise<void>;
}

/** Starts a fake tree (the standard one by default) and a resolver pointed at it. */
export async function startHarness(opts: {
  spec?: HierarchySpec;
  flags?: Record<string, unknown>;
  clock?: Clock;
  listZones?: Name[];
  logger?: Logger;
} = {}): Promise<Harness> {
  const clock = opts.clock ?? systemClock;
  const h = await startHierarchy(opts.spec ?? standardTree());
  const loaded = loadConfig({ flags: { 'query-loopback': true, 'do-ip6': false, 'client-deadline-ms': 3000, ...(opts.flags ?? {}) } });
  if (loaded.errors.length > 0) throw new Error(loaded.errors.map((e) => e.message).join('; '));
  const counting = new CountingTransport(new NetTransport({ portFor: h.portFor }));
  const stack = createDnsStack(loaded.values, opts.logger ?? createSilentLogger(), clock, {
    transport: counting,
    rootHints: parseZoneText(h.rootHints, { origin: '.' }),
    ...(opts.listZones ? { listZones: opts.listZones } : {}),
  });
  return { h, stack, counting, stop: () => h.stop() };
}
