// The exposition text: every family has HELP and TYPE before its samples, names and labels are well
// formed, histograms are cumulative with +Inf = count, and the required series are there.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { renderPrometheus } from '../../src/metrics/prometheus-text.js';
import { collectStats } from '../../src/metrics/stats-snapshot.js';
import { parseExposition } from '../helpers/prometheus.js';
import { fakeSources } from '../helpers/stats-sources.js';

const s = suite('metrics/prometheus-text');

s('renders the required series in valid exposition format', async () => {
  const text = renderPrometheus(await collectStats(fakeSources({ replication: () => ({ peers: [{ name: 'mx2', connected: true, lagRecords: 4, lagSec: 2 }] }) })));
  const m = parseExposition(text);
  assert.is(m.get('mxsentry_info{version="9.9.9"}'), 1);
  assert.is(m.get('mxsentry_dns_responses_total{rcode="SERVFAIL"}'), 2);
  assert.is(m.get('mxsentry_dns_answers_total{source="packet-cache"}'), 3);
  assert.is(m.get('mxsentry_dns_answers_total{source="recursion"}'), 6);
  assert.is(m.get('mxsentry_cache_hit_ratio{cache="rrset"}'), 0.75);
  assert.is(m.get('mxsentry_cache_entries{cache="packet"}'), 5);
  assert.is(m.get('mxsentry_resolver_servfail_total{cause="deadline",origin="client"}'), 1);
  assert.is(m.get('mxsentry_resolver_servfail_total{cause="no-servers",origin="in_process"}'), 4, 'the policy service\'s own lookups apart');
  assert.is(m.get('mxsentry_resolver_servfail_total{cause="no-servers",origin="client"}'), undefined);
  assert.is(m.get('mxsentry_upstream_rtt_seconds_bucket{transport="udp",le="0.005"}'), 1);
  assert.is(m.get('mxsentry_upstream_rtt_seconds_bucket{transport="udp",le="0.05"}'), 2, 'cumulative');
  assert.is(m.get('mxsentry_upstream_rtt_seconds_bucket{transport="udp",le="+Inf"}'), 2);
  assert.is(m.get('mxsentry_upstream_rtt_seconds_count{transport="udp"}'), 2);
  assert.is(m.get('mxsentry_policy_decisions_total{step="10",step_name="greylist",verdict="DEFER_IF_PERMIT"}'), 2);
  assert.is(m.get('mxsentry_dnslist_errors_total{tier="block",list="zen.spamhaus.org"}'), 1);
  assert.is(m.get('mxsentry_dnslist_failures_total{tier="block",list="zen.spamhaus.org"}'), 1, 'a failed lookup is not an error answer');
  assert.is(m.get('mxsentry_dnslist_timeouts_total{tier="block",list="zen.spamhaus.org"}'), 0);
  assert.is(m.get('mxsentry_dnslist_skipped_total{tier="block",list="zen.spamhaus.org"}'), 2, 'a suspended list\'s requests are neither queries nor errors');
  assert.is(m.get('mxsentry_greylist_triplets'), 2);
  assert.is(m.get('mxsentry_greylist_outcomes_total{outcome="deferred"}'), 2);
  assert.is(m.get('mxsentry_greylist_outcomes_total{outcome="auto_whitelisted"}'), 0, 'label values in snake_case');
  assert.is(m.get('mxsentry_greylist_outcomes_total{outcome="store_failures"}'), 0);
  assert.is(m.get('mxsentry_replication_lag_records{peer="mx2"}'), 4);
  assert.is(m.get('mxsentry_replication_lag_seconds{peer="mx2"}'), 2);
});

s('replication: every per-peer figure of `replication status` and the node-wide refusals are series too', async () => {
  const status = {
    refusedConnections: 3, droppedBeforeAuth: 2, clampedRecords: 1,
    peers: [
      { name: 'mx2', connected: true, inbound: true, lagRecords: 0, lagSec: 0, sentEntries: 120, receivedEntries: 80, repairedRecords: 5, lastDigestAtMs: 1_700_000_000_500 },
      { name: 'mx3', connected: false, inbound: false, lagRecords: 7, lagSec: 30, sentEntries: 0, receivedEntries: 0, repairedRecords: 0, lastDigestAtMs: null },
    ],
  };
  const text = renderPrometheus(await collectStats(fakeSources({ replication: () => status })));
  const m = parseExposition(text);
  assert.is(m.get('mxsentry_replication_peer_inbound{peer="mx2"}'), 1);
  assert.is(m.get('mxsentry_replication_peer_inbound{peer="mx3"}'), 0);
  assert.is(m.get('mxsentry_replication_sent_entries_total{peer="mx2"}'), 120);
  assert.is(m.get('mxsentry_replication_received_entries_total{peer="mx2"}'), 80);
  assert.is(m.get('mxsentry_replication_repaired_records_total{peer="mx2"}'), 5);
  assert.is(m.get('mxsentry_replication_last_digest_timestamp_seconds{peer="mx2"}'), 1_700_000_000.5);
  // No digest round yet: no sample rather than a misleading 0 (1970).
  assert.is(m.get('mxsentry_replication_last_digest_timestamp_seconds{peer="mx3"}'), undefined);
  assert.is(m.get('mxsentry_replication_refused_connections_total'), 3);
  assert.is(m.get('mxsentry_replication_dropped_connections_total'), 2, 'port checks among them');
  assert.is(m.get('mxsentry_replication_clamped_records_total'), 1);
});

s('policy connections Postfix could not use are counted (refused, protocol errors, timeouts, failures)', async () => {
  const server = { connectionsOpen: 200, connectionsAccepted: 500, connectionsRefused: 7, requests: 900, malformed: 1, protocolErrors: 2, internalErrors: 4, idleTimeouts: 3, requestTimeouts: 5 };
  const m = parseExposition(renderPrometheus(await collectStats(fakeSources({ policyServer: { stats: () => server } }))));
  assert.is(m.get('mxsentry_policy_connections'), 200);
  assert.is(m.get('mxsentry_policy_connections_refused_total'), 7);
  assert.is(m.get('mxsentry_policy_protocol_errors_total'), 2);
  assert.is(m.get('mxsentry_policy_request_timeouts_total'), 5);
  assert.is(m.get('mxsentry_policy_internal_errors_total'), 4);
});

s('DNS failures an alert needs: internal errors, and TCP connections refused at max-tcp-connections', async () => {
  const base = fakeSources().dnsServer.stats();
  const dns = { ...base, internalErrors: 3, tcp: { ...base.tcp, open: 100, accepted: 140, rejected: 6, evicted: 2 } };
  const m = parseExposition(renderPrometheus(await collectStats(fakeSources({ dnsServer: { stats: () => dns } }))));
  assert.is(m.get('mxsentry_dns_internal_errors_total'), 3);
  assert.is(m.get('mxsentry_dns_tcp_connections_refused_total'), 6);
  assert.is(m.get('mxsentry_dns_tcp_connections'), 100);
});

s('label values are escaped', async () => {
  const text = renderPrometheus(await collectStats(fakeSources({ replication: () => ({ peers: [{ name: 'a"b\\c\nd', lagRecords: 1 }] }) })));
  assert.ok(text.includes('mxsentry_replication_lag_records{peer="a\\"b\\\\c\\nd"} 1'), text);
  parseExposition(text);
});

s.run();
