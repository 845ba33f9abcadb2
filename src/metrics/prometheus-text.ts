// Renders a StatsSnapshot in the Prometheus text exposition format (version 0.0.4): HELP and TYPE
// lines, counters ending in _total, one histogram for upstream RTTs. Called by metrics-server.ts;
// pure string building, so the names it exports are tested without a socket.
import type { HistogramSnapshot } from './histogram.js';
import type { ReplicationPeerLag, StatsSnapshot } from './stats-snapshot.js';

/** Content-Type of the exposition format this module writes. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type Labels = Record<string, string | number>;

class Writer {
  private readonly out: string[] = [];

  family(name: string, type: 'counter' | 'gauge' | 'histogram', help: string): this {
    this.out.push(`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`);
    return this;
  }

  sample(name: string, value: number, labels: Labels = {}): this {
    this.out.push(`${name}${formatLabels(labels)} ${formatValue(value)}`);
    return this;
  }

  /** A family with one sample per entry. */
  each(name: string, type: 'counter' | 'gauge', help: string, rows: Array<[Labels, number]>): this {
    this.family(name, type, help);
    for (const [labels, value] of rows) this.sample(name, value, labels);
    return this;
  }

  histogram(name: string, help: string, series: Array<[Labels, HistogramSnapshot]>): this {
    this.family(name, 'histogram', help);
    for (const [labels, h] of series) {
      let cumulative = 0;
      h.bucketsSec.forEach((le, i) => {
        cumulative += h.counts[i] ?? 0;
        this.sample(`${name}_bucket`, cumulative, { ...labels, le: String(le) });
      });
      this.sample(`${name}_bucket`, h.count, { ...labels, le: '+Inf' });
      this.sample(`${name}_sum`, h.sumSec, labels);
      this.sample(`${name}_count`, h.count, labels);
    }
    return this;
  }

  text(): string {
    return `${this.out.join('\n')}\n`;
  }
}

function formatLabels(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${String(v).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length > 0 ? `{${parts.join(',')}}` : '';
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** The whole exposition for one snapshot. */
export function renderPrometheus(s: StatsSnapshot): string {
  const w = new Writer();
  const d = s.dns;
  w.each('mxsentry_info', 'gauge', 'Always 1; the version label says which mxsentry runs.', [[{ version: s.version }, 1]]);
  w.each('mxsentry_uptime_seconds', 'gauge', 'Seconds since the daemon started.', [[{}, s.uptimeSec]]);

  w.each('mxsentry_dns_queries_total', 'counter', 'DNS queries received, by transport.', [
    [{ transport: 'udp' }, d.server.queries.udp],
    [{ transport: 'tcp' }, d.server.queries.tcp],
  ]);
  w.each('mxsentry_dns_responses_total', 'counter', 'DNS responses sent, by rcode.', Object.entries(d.server.rcodes).map(([rcode, n]) => [{ rcode }, n]));
  w.each('mxsentry_dns_answers_total', 'counter', 'DNS answers by source: local zone, packet cache, RRset cache, recursion, stale (RFC 8767).',
    Object.entries(d.server.sources).map(([source, n]) => [{ source }, n]));
  w.each('mxsentry_dns_refused_total', 'counter', 'Queries from clients outside "allow", answered REFUSED.', [[{}, d.server.refused]]);
  w.each('mxsentry_dns_formerr_total', 'counter', 'Undecodable queries answered FORMERR.', [[{}, d.server.formerr]]);
  w.each('mxsentry_dns_dropped_total', 'counter', 'Packets not answered (unreadable, responses, shutting down).', [[{}, d.server.dropped]]);
  w.each('mxsentry_dns_overloaded_total', 'counter', 'Queries answered SERVFAIL because max-concurrent-queries was reached.', [[{}, d.server.overloaded]]);
  w.each('mxsentry_dns_internal_errors_total', 'counter', 'Queries answered SERVFAIL after an unexpected error in the daemon (logged).', [[{}, d.server.internalErrors]]);
  w.each('mxsentry_dns_tcp_connections', 'gauge', 'Open downstream DNS TCP connections.', [[{}, d.server.tcp.open]]);
  w.each('mxsentry_dns_tcp_connections_refused_total', 'counter', 'DNS TCP connections closed at once: max-tcp-connections reached and none idle to close.', [[{}, d.server.tcp.rejected]]);

  const caches: Array<[string, { entries: number; bytes: number; maxBytes: number; hits: number; misses: number; hitRatio: number }]> = [
    ['rrset', d.cache],
    ['packet', d.packetCache],
  ];
  w.each('mxsentry_cache_entries', 'gauge', 'Entries in the cache.', caches.map(([cache, c]) => [{ cache }, c.entries]));
  w.each('mxsentry_cache_bytes', 'gauge', 'Bytes held by the cache (estimate).', caches.map(([cache, c]) => [{ cache }, c.bytes]));
  w.each('mxsentry_cache_max_bytes', 'gauge', 'Byte budget of the cache.', caches.map(([cache, c]) => [{ cache }, c.maxBytes]));
  w.each('mxsentry_cache_hits_total', 'counter', 'Cache lookups that found an entry.', caches.map(([cache, c]) => [{ cache }, c.hits]));
  w.each('mxsentry_cache_misses_total', 'counter', 'Cache lookups that found nothing.', caches.map(([cache, c]) => [{ cache }, c.misses]));
  w.each('mxsentry_cache_hit_ratio', 'gauge', 'hits / (hits + misses) since start.', caches.map(([cache, c]) => [{ cache }, c.hitRatio]));
  w.each('mxsentry_cache_evictions_total', 'counter', 'RRset cache entries evicted for space.', [[{ cache: 'rrset' }, d.cache.evictions]]);
  w.each('mxsentry_infra_hosts', 'gauge', 'Upstream servers with RTT/EDNS/lameness data.', [[{}, d.infra.hosts]]);

  w.each('mxsentry_resolver_resolutions_total', 'counter', 'Resolutions started (client queries and in-process lookups, merged ones excluded).', [[{}, d.resolver.resolutions]]);
  w.each('mxsentry_resolver_merged_total', 'counter', 'Resolutions merged into one already in flight.', [[{}, d.resolver.merged]]);
  w.each('mxsentry_resolver_servfail_total', 'counter', 'Resolutions that ended in SERVFAIL, by cause and by who asked: origin="client" for DNS clients, origin="in_process" for the policy service\'s own DNS list and HELO lookups.', [
    ...Object.entries(d.resolver.failures).map(([cause, n]): [Labels, number] => [{ cause, origin: 'client' }, n]),
    ...Object.entries(d.resolver.inProcessFailures ?? {}).map(([cause, n]): [Labels, number] => [{ cause, origin: 'in_process' }, n]),
  ]);
  w.each('mxsentry_resolver_stale_served_total', 'counter', 'Answers served from expired data (RFC 8767).', [[{}, d.resolver.staleServed]]);
  w.each('mxsentry_resolver_prefetches_total', 'counter', 'Prefetches started.', [[{}, d.resolver.prefetches]]);
  w.each('mxsentry_resolver_in_flight', 'gauge', 'Resolutions in progress.', [[{}, d.resolver.inFlight]]);
  w.each('mxsentry_resolver_concurrency_rejected_total', 'counter', 'Resolutions refused at the concurrency limit.', [[{}, d.resolver.concurrencyRejected]]);

  const it = d.iterator;
  w.each('mxsentry_upstream_queries_total', 'counter', 'Queries sent to authoritative servers.', [[{}, it.upstreamQueries]]);
  w.each('mxsentry_upstream_timeouts_total', 'counter', 'Upstream queries that timed out or met a network error.', [[{}, it.upstreamTimeouts]]);
  w.each('mxsentry_upstream_tcp_retries_total', 'counter', 'Truncated UDP answers retried over TCP.', [[{}, it.tcpRetries]]);
  w.each('mxsentry_upstream_edns_fallbacks_total', 'counter', 'Servers retried without EDNS.', [[{}, it.ednsFallbacks]]);
  w.each('mxsentry_upstream_case_mismatches_total', 'counter', '0x20 case mismatches (possible spoofing), retried over TCP.', [[{}, it.caseMismatches]]);
  w.each('mxsentry_upstream_lame_servers_total', 'counter', 'Lame delegations met.', [[{}, it.lameServers]]);
  w.each('mxsentry_upstream_scrubbed_records_total', 'counter', 'Out-of-bailiwick records dropped.', [[{}, it.scrubbedRecords]]);
  if (d.transport) {
    w.each('mxsentry_upstream_spoof_attempts_total', 'counter', 'Packets ignored for a wrong ID or question.', [[{}, d.transport.spoofAttempts]]);
    w.each('mxsentry_upstream_bad_responses_total', 'counter', 'Answers that did not decode.', [[{}, d.transport.badResponses]]);
  }
  if (d.upstreamRtt) {
    w.histogram('mxsentry_upstream_rtt_seconds', 'Round-trip time of answered upstream queries.', [
      [{ transport: 'udp' }, d.upstreamRtt.udp],
      [{ transport: 'tcp' }, d.upstreamRtt.tcp],
    ]);
  }

  const p = s.policy;
  w.each('mxsentry_policy_decisions_total', 'counter', 'Policy decisions by deciding step and verdict.',
    p.pipeline.byStep.map((c) => [{ step: c.step, step_name: c.stepName, verdict: c.verdict }, c.count]));
  w.each('mxsentry_policy_budget_exceeded_total', 'counter', 'Decisions answered DUNNO because the time budget ran out.', [[{}, p.pipeline.budgetExceeded]]);
  w.each('mxsentry_policy_check_errors_total', 'counter', 'Policy checks that failed (answered DUNNO, fail open).', [[{}, p.pipeline.checkErrors]]);
  w.each('mxsentry_policy_requests_total', 'counter', 'Policy requests received from Postfix.', [[{}, p.server.requests]]);
  w.each('mxsentry_policy_malformed_total', 'counter', 'Malformed policy requests (answered DUNNO).', [[{}, p.server.malformed]]);
  w.each('mxsentry_policy_connections', 'gauge', 'Open policy connections.', [[{}, p.server.connectionsOpen]]);
  // Postfix meets each of these as a failed policy lookup, so its mail goes through on
  // smtpd_policy_service_default_action without greylisting or DNSBL checks: worth an alert.
  w.each('mxsentry_policy_connections_refused_total', 'counter', 'Policy connections closed at once: policy-max-connections reached, or shutting down.', [[{}, p.server.connectionsRefused]]);
  w.each('mxsentry_policy_protocol_errors_total', 'counter', 'Policy connections closed for an over-long line or request, or binary garbage.', [[{}, p.server.protocolErrors]]);
  w.each('mxsentry_policy_request_timeouts_total', 'counter', 'Policy connections closed because a request was not finished in time.', [[{}, p.server.requestTimeouts]]);
  w.each('mxsentry_policy_internal_errors_total', 'counter', 'Policy requests closed without a reply because the decision failed.', [[{}, p.server.internalErrors]]);
  w.each('mxsentry_dnslist_queries_total', 'counter', 'DNSBL/DNSWL lookups consulted for a decision, per list (a list not asked, suspended or before its first self test, is counted in mxsentry_dnslist_skipped_total).', p.dnsLists.map((l) => [{ tier: l.tier, list: l.list }, l.queries]));
  w.each('mxsentry_dnslist_listed_total', 'counter', 'DNSBL/DNSWL lookups that found the client listed.', p.dnsLists.map((l) => [{ tier: l.tier, list: l.list }, l.listed]));
  w.each('mxsentry_dnslist_errors_total', 'counter', 'DNSBL/DNSWL error answers (e.g. Spamhaus 127.255.255.x), never counted as listings.', p.dnsLists.map((l) => [{ tier: l.tier, list: l.list }, l.errors]));
  w.each('mxsentry_dnslist_failures_total', 'counter', 'DNSBL/DNSWL lookups that failed without an answer from the list: its servers answered SERVFAIL or REFUSED, or could not be reached.', p.dnsLists.map((l) => [{ tier: l.tier, list: l.list }, l.failures]));
  w.each('mxsentry_dnslist_timeouts_total', 'counter', 'DNSBL/DNSWL lookups whose list was silent: no answer within the budget, or its servers held back after timing out.', p.dnsLists.map((l) => [{ tier: l.tier, list: l.list }, l.timeouts]));
  w.each('mxsentry_dnslist_skipped_total', 'counter', 'Requests for which a DNSBL/DNSWL was not consulted: suspended because its self test found 127.0.0.1 listed, or before its first self test ended.', p.dnsLists.map((l) => [{ tier: l.tier, list: l.list }, l.skipped]));
  if (p.greylist) {
    w.each('mxsentry_greylist_outcomes_total', 'counter', 'Greylisting outcomes.', Object.entries(p.greylist).map(([outcome, n]) => [{ outcome: snakeCase(outcome) }, n]));
  }

  w.each('mxsentry_store_healthy', 'gauge', '1 when the LMDB greylist store is open and writable.', [[{}, s.store.healthy ? 1 : 0]]);
  w.each('mxsentry_store_data_file_problem', 'gauge', '1 when the data file was removed or replaced, or its folder made unusable, under the running daemon: the store still works, but what it holds is lost at the next stop (or the next start cannot open it).', [[{}, s.store.dataFileProblem ? 1 : 0]]);
  if (s.store.counts) {
    w.each('mxsentry_greylist_triplets', 'gauge', 'Greylist triplets in the store.', [[{}, s.store.counts.triplets]]);
    w.each('mxsentry_greylist_clients', 'gauge', 'Auto-whitelisted client records in the store.', [[{}, s.store.counts.clients]]);
    w.each('mxsentry_store_used_bytes', 'gauge', 'Bytes of LMDB pages in use.', [[{}, s.store.counts.usedBytes]]);
    w.each('mxsentry_store_limit_bytes', 'gauge', 'LMDB map size limit.', [[{}, s.store.counts.limitBytes]]);
    w.each('mxsentry_replication_log_entries', 'gauge', 'Entries in the replication log.', [[{}, s.store.counts.replogEntries]]);
  }

  for (const [name, type, help, value] of PEER_SERIES) {
    const rows: Array<[Labels, number]> = [];
    for (const p of s.replication.peers) {
      const v = value(p);
      if (v !== undefined) rows.push([{ peer: p.peer }, v]);
    }
    w.each(name, type, help, rows);
  }
  const r = s.replication;
  if (r.refusedConnections !== undefined) {
    w.each('mxsentry_replication_refused_connections_total', 'counter', 'Replication connections refused (wrong key, name or protocol version, a node without a peer line here, or dropped before authentication).', [[{}, r.refusedConnections]]);
  }
  if (r.droppedBeforeAuth !== undefined) {
    w.each('mxsentry_replication_dropped_connections_total', 'counter', 'Of the refused replication connections, those dropped before authentication (no TLS-PSK client: port checks, scanners).', [[{}, r.droppedBeforeAuth]]);
  }
  if (r.clampedRecords !== undefined) {
    w.each('mxsentry_replication_clamped_records_total', 'counter', "Peers' records whose times lay in the future, clamped to now plus the allowed skew.", [[{}, r.clampedRecords]]);
  }
  return w.text();
}

const flag = (b: boolean | undefined): number | undefined => (b === undefined ? undefined : b ? 1 : 0);

/** Per-peer replication series: name, type, help, value (undefined: no sample for that peer). */
const PEER_SERIES: ReadonlyArray<[string, 'counter' | 'gauge', string, (p: ReplicationPeerLag) => number | undefined]> = [
  ['mxsentry_replication_peer_connected', 'gauge', '1 when the replication peer is connected.', (p) => flag(p.connected)],
  ['mxsentry_replication_lag_records', 'gauge', 'Greylist changes not yet acknowledged by the peer.', (p) => p.lagRecords],
  ['mxsentry_replication_lag_seconds', 'gauge', 'Age of the oldest change not yet acknowledged by the peer.', (p) => p.lagSec],
  ['mxsentry_replication_peer_inbound', 'gauge', '1 when the peer has a session open to this node (it pushes its changes).', (p) => flag(p.inbound)],
  ['mxsentry_replication_sent_entries_total', 'counter', 'Log entries pushed to the peer (kept when a reload replaces the link).', (p) => p.sentEntries],
  ['mxsentry_replication_received_entries_total', 'counter', 'Log entries received from the peer.', (p) => p.receivedEntries],
  ['mxsentry_replication_repaired_records_total', 'counter', 'Records sent to the peer by digest repair.', (p) => p.repairedRecords],
  ['mxsentry_replication_last_digest_timestamp_seconds', 'gauge', 'Unix time the last digest comparison with the peer finished.',
    (p) => (p.lastDigestAtMs === undefined ? undefined : p.lastDigestAtMs / 1000)],
];

/** Label values in Prometheus' snake_case: autoWhitelisted -> auto_whitelisted. */
function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
