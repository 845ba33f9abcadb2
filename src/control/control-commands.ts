// The commands of the control socket: stats, cache-flush, cache-dump, reload, replication-status.
// Built by operations.ts over narrow views of the running daemon; each handler validates its
// arguments and throws ControlError CONTROL_ERR_BAD_REQUEST on bad ones. Handlers never touch sockets.
import type { InfraDumpRow } from '../dns/cache/infra-cache.js';
import type { RRsetCacheDumpRow } from '../dns/cache/rrset-cache.js';
import { parseName } from '../dns/wire/name.js';
import { rdataToText, typeToString } from '../dns/wire/rdata.js';
import type { Name } from '../dns/wire/types.js';
import { describeError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import type { StatsSnapshot } from '../metrics/stats-snapshot.js';
import { ControlError } from './control-error.js';
import type { ControlHandler, ControlRequest } from './control-server.js';
import type { ReloadReport } from './reload.js';

/** What the commands act on. */
export interface ControlTarget {
  cache: { flushAll(): void; flushName(n: Name): number; flushZone(z: Name): number; dump(): Iterable<RRsetCacheDumpRow> };
  packetCache: { flushAll(): void; flushName(n: Name): number; flushZone(z: Name): number; stats(): { entries: number } };
  infra: { flush(): void; stats(): { hosts: number }; dump(): Iterable<InfraDumpRow> };
  stats(): Promise<StatsSnapshot>;
  reload(): Promise<ReloadReport>;
  /** Set by the replication module; absent: "replication not configured". */
  replicationStatus?: (() => unknown) | undefined;
  logger: Logger;
}

/** Result of cache-flush: what was removed. */
export interface FlushResult {
  scope: 'all' | 'name' | 'zone' | 'infra';
  target?: string;
  rrsets?: number;
  packets?: number;
  hosts?: number;
}

/** Result of cache-dump: presentation-format lines (zone-file records, `;` comments). */
export interface DumpResult {
  lines: string[];
}

function nameArg(req: ControlRequest, key: string): Name | undefined {
  const v = req[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.trim() === '') throw new ControlError('CONTROL_ERR_BAD_REQUEST', `"${key}" must be a domain name`);
  try {
    return parseName(v.trim());
  } catch (err) {
    throw new ControlError('CONTROL_ERR_BAD_REQUEST', `"${key}": ${describeError(err)}`, { cause: err });
  }
}

/** Cache flush: one of name, zone, infra, or nothing for the whole RRset and packet caches. */
export function flushCache(t: ControlTarget, req: ControlRequest): FlushResult {
  const name = nameArg(req, 'name');
  const zone = nameArg(req, 'zone');
  if (req.infra !== undefined && typeof req.infra !== 'boolean') {
    // A wrong type must not fall through to "flush everything".
    throw new ControlError('CONTROL_ERR_BAD_REQUEST', `infra must be true or false, got ${JSON.stringify(req.infra)}`);
  }
  const infra = req.infra === true;
  if ([name !== undefined, zone !== undefined, infra].filter(Boolean).length > 1) {
    throw new ControlError('CONTROL_ERR_BAD_REQUEST', 'give one of a name, --zone or --infra');
  }
  let result: FlushResult;
  if (infra) {
    const hosts = t.infra.stats().hosts;
    t.infra.flush();
    result = { scope: 'infra', hosts };
  } else if (zone !== undefined) {
    result = { scope: 'zone', target: zone, rrsets: t.cache.flushZone(zone), packets: t.packetCache.flushZone(zone) };
  } else if (name !== undefined) {
    result = { scope: 'name', target: name, rrsets: t.cache.flushName(name), packets: t.packetCache.flushName(name) };
  } else {
    let rrsets = 0;
    for (const _row of t.cache.dump()) rrsets++;
    const packets = t.packetCache.stats().entries;
    t.cache.flushAll();
    t.packetCache.flushAll();
    result = { scope: 'all', rrsets, packets };
  }
  t.logger.info(result, 'cache flushed');
  return result;
}

/** The RRset cache, negative entries and infra data as text, like Unbound's dump_cache. */
export function dumpCache(t: ControlTarget): DumpResult {
  const lines: string[] = [';; mxsentry cache dump: RRsets (owner TTL class type data; TTL 0 = expired, kept for serve-stale)'];
  const negative: string[] = [];
  for (const row of t.cache.dump()) {
    if (row.kind === 'rrset') {
      for (const rd of row.rdatas ?? []) {
        let data: string;
        try {
          data = rdataToText(row.type, rd);
        } catch (err) {
          data = `\\# ${rd.length} ${rd.toString('hex')} ; ${describeError(err)}`;
        }
        lines.push(`${row.name}\t${row.ttlSec}\tIN\t${typeToString(row.type)}\t${data}`);
      }
    } else {
      negative.push(`; ${row.kind}\t${row.name}\t${row.ttlSec}\t${row.kind === 'nodata' ? typeToString(row.type) : ''}`.trimEnd());
    }
  }
  lines.push(';; negative answers (RFC 2308): kind name TTL [type]');
  // One push per line: a spread of a large cache's lines overflows the stack.
  for (const n of negative) lines.push(n);
  lines.push(';; upstream servers: address srtt_ms rto_ms timeouts backed_off edns lame_zones');
  for (const h of t.infra.dump()) {
    lines.push(`; ${h.address}\t${h.srttMs}\t${h.rtoMs}\t${h.timeouts}\t${h.backedOff ? `yes (${h.downTypes.join(',')})` : 'no'}\t${h.edns}\t${h.lameZones.join(',') || '-'}`);
  }
  return { lines };
}

/** The handler table for ControlServer. */
export function createControlHandlers(t: ControlTarget): Record<string, ControlHandler> {
  return {
    stats: () => t.stats(),
    'cache-flush': (req) => flushCache(t, req),
    'cache-dump': () => dumpCache(t),
    reload: () => t.reload(),
    'replication-status': async () => {
      if (!t.replicationStatus) return { configured: false, message: 'replication not configured' };
      return { configured: true, status: await t.replicationStatus() };
    },
  };
}
