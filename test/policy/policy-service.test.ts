// The whole 11-step pipeline as the daemon builds it (createPolicyService), with DNSBL/DNSWL
// lookups going through the real in-process resolver to fake authoritative list zones on loopback,
// and greylisting on an in-memory store. Includes a list whose servers never answer.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createPolicyService, type PolicySettings } from '../../src/policy/policy-service.js';
import { DEFAULT_GREYLIST_CONFIG } from '../../src/policy/greylist.js';
import { ManualClock } from '../../src/util/clock.js';
import { createSilentLogger } from '../../src/util/logger.js';
import { capturingLogger } from '../helpers/capturing-logger.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { standardTree } from '../helpers/fake-hierarchy.js';
import { MemoryGreylistStore } from '../helpers/memory-greylist-store.js';
import { startHarness, type Harness } from '../helpers/resolver-harness.js';
import { loggedHook } from '../helpers/hook-errors.js';

const s = suite('policy/policy-service: the pipeline through the real resolver');
let hx: Harness;

function settings(over: Partial<PolicySettings> = {}): PolicySettings {
  return {
    budgetMs: 2000, heloMustResolve: false, heloRequireFqdn: true, recipientFiles: [], recipientDelimiter: '+',
    knownNetworks: ['127.0.0.1/32'], knownNetworkFiles: [],
    dnswlTrusted: ['trusted.example.net=127.0.[0..255].[2..3]'], dnsbl: ['dnsbl.example.net=127.0.0.[2..11]', 'dead.example.net'], dnsblThreshold: 1,
    dnswl: ['dnswl.example.net'], dnsListBudgetMs: 600,
    greylist: true, greylistConfig: { ...DEFAULT_GREYLIST_CONFIG, delaySec: 60 }, whitelistClientFiles: [], whitelistRecipientFiles: [],
    xGreylistHeader: true, ...over,
  };
}

function request(client: string, over: Record<string, string> = {}): Record<string, string> {
  return { request: 'smtpd_access_policy', protocol_state: 'RCPT', helo_name: 'mx.example.org', sender: 'a@example.org', recipient: 'b@example.com', client_address: client, client_name: 'unknown', instance: `i-${client}-${Math.random()}`, ...over };
}

s.before(loggedHook(async () => {
  const spec = standardTree();
  spec.zones['.']!.records.push('org. 172800 IN NS a.gtld-servers.net.');
  // A trusted DNSWL listing 127.0.0.9 (test point 2 as well), a DNSWL listing 127.0.0.5, a DNSBL whose server never answers.
  spec.zones['example.net.']!.records.push(
    'trusted 3600 IN NS ns.trusted.example.net.', 'ns.trusted 3600 IN A 127.53.4.2',
    'dnswl 3600 IN NS ns.dnswl.example.net.', 'ns.dnswl 3600 IN A 127.53.4.3',
    'dead 3600 IN NS ns.dead.example.net.', 'ns.dead 3600 IN A 127.53.4.4',
  );
  const soa = (z: string): string => `@ 3600 IN SOA ns.${z}. h.example.net. 1 600 300 86400 60`;
  spec.zones['trusted.example.net.'] = { records: [soa('trusted.example.net'), '@ 3600 IN NS ns.trusted.example.net.', 'ns 3600 IN A 127.53.4.2', '9.0.0.127 300 IN A 127.0.10.2', '2.0.0.127 300 IN A 127.0.10.2'] };
  spec.zones['dnswl.example.net.'] = { records: [soa('dnswl.example.net'), '@ 3600 IN NS ns.dnswl.example.net.', 'ns 3600 IN A 127.53.4.3', '5.0.0.127 300 IN A 127.0.0.2', '2.0.0.127 300 IN A 127.0.0.2'] };
  spec.zones['dead.example.net.'] = { records: [soa('dead.example.net'), '@ 3600 IN NS ns.dead.example.net.', 'ns 3600 IN A 127.53.4.4'] };
  spec.servers.push(
    { address: '127.53.4.2', zones: ['trusted.example.net.'], behaviour: 'nxdomain-ent' },
    { address: '127.53.4.3', zones: ['dnswl.example.net.'], behaviour: 'nxdomain-ent' },
    { address: '127.53.4.4', zones: ['dead.example.net.'], behaviour: 'drop' },
  );
  hx = await startHarness({ spec, listZones: ['trusted.example.net.', 'dnsbl.example.net.', 'dnswl.example.net.', 'dead.example.net.'] });
}));
s.after(async () => {
  await hx.stop();
});

async function build(over: Partial<PolicySettings> = {}) {
  const clock = new ManualClock(Date.now());
  const store = new MemoryGreylistStore();
  const svc = await createPolicyService(settings(over), { resolve: hx.stack.resolver.resolve, store, clock, logger: createSilentLogger(), nodeId: 'n1', version: 'test' });
  return { svc, clock, store };
}

s('a DNSBL-listed client is rejected with 554 naming the list, despite a dead list', async () => {
  const { svc } = await build();
  const started = Date.now();
  const d = await svc.pipeline.decide(request('127.0.0.4'));
  assert.is(d.stepName, 'dnsbl');
  assert.match(d.action, /^554 5\.7\.1 .*dnsbl\.example\.net/);
  assert.ok(Date.now() - started < 1500, 'the dead list costs at most the list budget');
});

s('a trusted-DNSWL client passes at step 7 before any DNSBL', async () => {
  const { svc } = await build();
  const d = await svc.pipeline.decide(request('127.0.0.9'));
  assert.is(d.step, 7);
  assert.is(d.action, 'DUNNO');
});

s('a DNSWL client skips greylisting (step 9)', async () => {
  const { svc } = await build();
  const d = await svc.pipeline.decide(request('127.0.0.5'));
  assert.is(d.step, 9);
  assert.is(d.action, 'DUNNO');
});

s('an unlisted client is greylisted, passes after the delay with the X-Greylist header once', async () => {
  const { svc, clock } = await build();
  const first = await svc.pipeline.decide(request('127.0.0.20'));
  assert.is(first.step, 10);
  assert.match(first.action, /^DEFER_IF_PERMIT 4\.2\.0/);
  clock.advanceSec(30);
  assert.match((await svc.pipeline.decide(request('127.0.0.20'))).action, /^DEFER_IF_PERMIT/);
  clock.advanceSec(31);
  const inst = { instance: 'msg-1' };
  const pass = await svc.pipeline.decide(request('127.0.0.20', inst));
  assert.match(pass.action, /^PREPEND X-Greylist: delayed 6\d seconds by mxsentry/);
  const again = await svc.pipeline.decide(request('127.0.0.20', inst));
  assert.is(again.action, 'DUNNO', 'one header per message');
});

s('a known network passes at step 5 and SASL at step 6; no HELO is rejected at step 1', async () => {
  const { svc } = await build();
  assert.is((await svc.pipeline.decide(request('127.0.0.1'))).step, 5);
  assert.is((await svc.pipeline.decide(request('127.0.0.30', { sasl_username: 'alice' }))).step, 6);
  const noHelo = await svc.pipeline.decide(request('127.0.0.31', { helo_name: '' }));
  assert.is(noHelo.step, 1);
  assert.match(noHelo.action, /^503 5\.5\.1 /);
});

s('clients decided before the lists (known network, SASL, bad HELO, bad sender) cause no DNS list query', async () => {
  const { svc } = await build({ knownNetworks: ['127.0.0.41/32'] });
  const before = hx.counting.log.length;
  const listQueries = (): string[] => hx.counting.log.slice(before).map((q) => q.name).filter((n) => /\.(trusted|dnsbl|dnswl|dead)\.example\.net\.?$/.test(n));
  assert.is((await svc.pipeline.decide(request('127.0.0.41'))).step, 5);
  assert.is((await svc.pipeline.decide(request('127.0.0.42', { sasl_username: 'alice' }))).step, 6);
  assert.is((await svc.pipeline.decide(request('127.0.0.43', { helo_name: 'localhost' }))).step, 2);
  assert.is((await svc.pipeline.decide(request('127.0.0.44', { sender: 'no-domain' }))).step, 3);
  assert.equal(listQueries(), [], 'their addresses never went to a list');
  // A client the lists matter for is looked up.
  await svc.pipeline.decide(request('127.0.0.45'));
  assert.ok(listQueries().some((n) => n.startsWith('45.0.0.127.')), 'an undecided client is looked up');
});

s('a known network from a file is named by its file and line, beside the inline ones', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-known-'));
  try {
    const file = join(dir, 'known.cidr');
    writeFileSync(file, '# backup MXs\n192.0.2.25/32 OK\n');
    const { svc } = await build({ knownNetworkFiles: [file] });
    const d = await svc.pipeline.decide(request('192.0.2.25'));
    assert.is(d.step, 5);
    assert.is(d.reason, `known network 192.0.2.25/32 (${file}:2)`);
    assert.is((await svc.pipeline.decide(request('127.0.0.1'))).reason, 'known network 127.0.0.1/32 (known-network:1)');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s('DNSBL answers come from the resolver cache the second time (in-process, no second cache)', async () => {
  const { svc } = await build();
  await svc.pipeline.decide(request('127.0.0.4'));
  const before = hx.counting.countForName('4.0.0.127.dnsbl.example.net.');
  await svc.pipeline.decide(request('127.0.0.4'));
  assert.is(hx.counting.countForName('4.0.0.127.dnsbl.example.net.'), before);
});

s('RFC 5782 self test reports the dead list and passes the working ones', async () => {
  const { svc } = await build();
  const results = await svc.dnsLists.selfTest();
  const byZone = new Map(results.map((r) => [r.zone, r]));
  assert.ok(byZone.get('dnsbl.example.net')?.ok, 'dnsbl passes its test points');
  assert.not.ok(byZone.get('dead.example.net')?.ok, 'the dead list fails them');
});

s('whitelist lines postgrey would skip are logged with file:line when the service is built', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-wl-'));
  try {
    const file = join(dir, 'whitelist_clients');
    writeFileSync(file, '# comment\nmail.example.org\n1.2.3.4/40\n192.0.2.0/24\n');
    const { logger, lines } = capturingLogger();
    const svc = await createPolicyService(settings({ whitelistClientFiles: [file] }), { resolve: hx.stack.resolver.resolve, store: new MemoryGreylistStore(), clock: new ManualClock(Date.now()), logger, nodeId: 'n1', version: 'test' });
    const warns = lines().filter((l) => l.level === 'warn' && l.module === 'policy.greylist');
    assert.is(warns.length, 1, JSON.stringify(lines()));
    assert.is(warns[0]!.line, 3);
    assert.match(String(warns[0]!.msg), `${file}:3`);
    assert.match(String(warns[0]!.msg), '1.2.3.4/40');
    // The valid lines still apply.
    const d = await svc.pipeline.decide(request('192.0.2.77'));
    assert.is(d.stepName, 'greylist');
    assert.match(d.reason, 'whitelist');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s.run();
