// Configuration reload against recording stand-ins: a broken file is rejected whole and nothing is
// touched; a good one reaches the resolver, iterator, ACL, caches, local zones, policy and log level;
// listener changes are reported as needing a restart and stay reported until one happens.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type ConfigValues } from '../../src/config/load.js';
import { ControlError } from '../../src/control/control-error.js';
import { changedKeys, reloadConfig, RESTART_KEYS, REPLICATION_RESTART_KEYS, type ReloadParts } from '../../src/control/reload.js';
import { packageRoot } from '../../src/util/paths.js';
import type { IteratorConfig } from '../../src/dns/iterator/iterator-config.js';
import type { ResolverConfig } from '../../src/dns/resolver.js';
import type { LocalZones } from '../../src/dns/server/local-zones.js';
import type { PolicyService } from '../../src/policy/policy-service.js';
import { CidrSet } from '../../src/util/cidr.js';
import { Writable } from 'node:stream';
import { createRootLogger } from '../../src/util/logger.js';
import { createLocalZones, localZonesFileOf } from '../../src/dns/server/configured-local-zones.js';
import { parseName } from '../../src/dns/wire/name.js';
import { RRType, Rcode } from '../../src/dns/wire/types.js';
import { generateReplicationKey, replicationSettingsOf, type ReplicationSettings } from '../../src/store/replication/replication-settings.js';
import type { ReplicationChange } from '../../src/store/replication/replicator.js';
import { fileSettingWarningsOf } from '../../src/cli/config-check.js';

const s = suite('control/reload');
let dir = '';
s.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'mxsentry-reload-'));
});
s.after.each(() => rmSync(dir, { recursive: true, force: true }));

interface Recorder {
  parts: ReloadParts;
  events: string[];
  iteratorConfig: IteratorConfig;
  allow: CidrSet | null;
}

function recorder(file: string, opts: { policyFails?: boolean; replication?: ReplicationSettings } = {}): Recorder {
  const events: string[] = [];
  const iteratorConfig = { useCapsForId: true, qnameMinimisation: 'relaxed' } as IteratorConfig;
  const rec: Recorder = { events, iteratorConfig, allow: null, parts: undefined as unknown as ReloadParts };
  // A real logger into a sink: the reload changes its level, which must not make the test noisy.
  const logger = createRootLogger('info', new Writable({ write: (_c, _e, cb) => cb() }));
  rec.parts = {
    loadConfig: () => loadConfig({ file, flags: { 'dns-listen': ['127.0.0.1:5353'] } }),
    logger,
    listZonesOf: () => [],
    iteratorConfig: (v) => ({ useCapsForId: v['use-caps-for-id'], qnameMinimisation: v['qname-minimisation'] }) as IteratorConfig,
    resolverConfig: (v) => ({ serveExpired: v['serve-expired'] }) as ResolverConfig,
    createLocalZones: () => {
      events.push('local zones built');
      return {} as LocalZones;
    },
    createPolicy: async () => {
      if (opts.policyFails) throw new Error('recipients.txt:3: bad line');
      events.push('policy built');
      return {} as PolicyService;
    },
    iterator: { config: iteratorConfig },
    resolver: { reconfigure: (c) => events.push(`resolver serveExpired=${String(c.serveExpired)}`) },
    cache: { resize: (n) => events.push(`cache ${n}`) },
    packetCache: { resize: (n) => events.push(`packet ${n}`) },
    dnsServer: {
      setAllow: (a) => {
        rec.allow = a;
        events.push('allow');
      },
      setLocalZones: () => events.push('server local zones'),
    },
    setLocalZones: () => events.push('stack local zones'),
    swapPolicy: () => events.push('policy swapped'),
    setMetricsAllow: () => events.push('metrics allow'),
    setExpiry: (maxAgeSec, retryWindowSec) => events.push(`max-age ${maxAgeSec} retry-window ${retryWindowSec}`),
    replicationSettingsOf,
    replication: {
      settings: opts.replication,
      setExpiry: (maxAgeMs, retryWindowMs) => events.push(`replication max-age ${maxAgeMs} retry-window ${retryWindowMs}`),
      reconfigure: (next): ReplicationChange => {
        const before = opts.replication!;
        events.push(`replication peers=${next.peers.map((p) => p.text).join(',')} digest=${next.digestIntervalMs}`);
        return {
          peersAdded: next.peers.filter((p) => !before.peers.some((q) => q.text === p.text)).map((p) => p.text),
          peersRemoved: before.peers.filter((p) => !next.peers.some((q) => q.text === p.text)).map((p) => p.text),
          keyChanged: !before.psk.equals(next.psk),
          reconnected: [],
        };
      },
    },
  };
  return rec;
}

/** The events that changed the running daemon (building a replacement changes nothing). */
function swaps(events: string[]): string[] {
  return events.filter((e) => !e.endsWith(' built'));
}

function start(file: string): ConfigValues {
  const r = loadConfig({ file, flags: { 'dns-listen': ['127.0.0.1:5353'] } });
  assert.equal(r.errors, []);
  return r.values;
}

s('a broken file is rejected with every problem and nothing is applied', async () => {
  const file = join(dir, 'mx.conf');
  writeFileSync(file, 'serve-expired: no\n');
  const current = start(file);
  writeFileSync(file, 'serve-expired: maybe\nallow: 10.0.0.0/33\ncache-sise: 1m\n');
  const rec = recorder(file);
  try {
    await reloadConfig(current, rec.parts);
    assert.unreachable('accepted a broken file');
  } catch (err) {
    assert.instance(err, ControlError);
    const msg = (err as ControlError).message;
    assert.is((err as ControlError).code, 'CONTROL_ERR_FAILED');
    assert.match(msg, /3 problem/);
    assert.match(msg, /mx\.conf:1: serve-expired/);
    assert.match(msg, /mx\.conf:2: allow/);
    assert.match(msg, /mx\.conf:3: unknown key "cache-sise" \(did you mean "cache-size"\?\)/);
  }
  assert.equal(rec.events, []);
});

s('a failing table file rejects the reload before anything is swapped', async () => {
  const file = join(dir, 'mx.conf');
  writeFileSync(file, 'allow: 127.0.0.0/8\n');
  const current = start(file);
  writeFileSync(file, 'allow: 10.0.0.0/8\n');
  const rec = recorder(file, { policyFails: true });
  try {
    await reloadConfig(current, rec.parts);
    assert.unreachable('accepted');
  } catch (err) {
    assert.match((err as Error).message, /recipients\.txt:3/);
  }
  assert.equal(swaps(rec.events), []);
});

s('the local zones file is re-read on every reload; one that no longer parses rejects the reload', async () => {
  const file = join(dir, 'mx.conf');
  const zones = join(dir, 'local.conf');
  writeFileSync(zones, 'local-zone: "mx.internal." static\nlocal-data: "a.mx.internal. 60 IN A 192.0.2.1"\n');
  writeFileSync(file, `local-zones-file: ${zones}\n`);
  const current = start(file);
  const installed: LocalZones[] = [];
  const rec = recorder(file);
  rec.parts.createLocalZones = createLocalZones;
  rec.parts.localZonesFileOf = localZonesFileOf;
  rec.parts.setLocalZones = (z) => installed.push(z);
  // Same path, new data: no configuration value changed, the zones are rebuilt anyway.
  writeFileSync(zones, 'local-zone: "mx.internal." static\nlocal-data: "b.mx.internal. 60 IN A 192.0.2.2"\n');
  const { report } = await reloadConfig(current, rec.parts);
  assert.equal(report.applied, []);
  assert.equal(report.reread, [zones], 'the report says the file was read again');
  const z = installed.at(-1)!;
  assert.is(z.lookup(parseName('b.mx.internal.'), RRType.A)?.answers.length, 1);
  assert.is(z.lookup(parseName('a.mx.internal.'), RRType.A)?.rcode, Rcode.NXDOMAIN);
  // A syntax error: rejected with the file and line, nothing installed.
  writeFileSync(zones, 'local-zone: "mx.internal." static\nlocal-data: "c.mx.internal. 60 IN A 999.1.1.1"\n');
  const rec2 = recorder(file);
  rec2.parts.createLocalZones = createLocalZones;
  try {
    await reloadConfig(current, rec2.parts);
    assert.unreachable('accepted a broken zones file');
  } catch (err) {
    assert.is((err as ControlError).code, 'CONTROL_ERR_FAILED');
    assert.match((err as Error).message, 'local.conf:2');
  }
  assert.equal(swaps(rec2.events), []);
});

s('a good file is applied live; listener changes need a restart', async () => {
  const file = join(dir, 'mx.conf');
  writeFileSync(file, 'serve-expired: yes\nlog-level: info\npolicy-listen: 127.0.0.1:10023\n');
  const current = start(file);
  writeFileSync(file, [
    'serve-expired: no', 'use-caps-for-id: no', 'allow: 10.1.0.0/16', 'cache-size: 32m', 'log-level: debug',
    'no-default-zone: test.', 'max-age: 10d', 'policy-listen: 127.0.0.1:10024', '',
  ].join('\n'));
  const rec = recorder(file);
  const moduleLog = rec.parts.logger.child({ module: 'dns.server' });
  assert.not.ok(moduleLog.isLevelEnabled('debug'));
  const { values, report } = await reloadConfig(current, rec.parts);
  assert.equal(report.restartNeeded, ['policy-listen']);
  assert.equal(report.applied, ['allow', 'cache-size', 'log-level', 'max-age', 'no-default-zone', 'serve-expired', 'use-caps-for-id']);
  assert.is(report.file, file);
  assert.ok(rec.events.includes('resolver serveExpired=false'));
  assert.is(rec.iteratorConfig.useCapsForId, false, 'iterator settings updated in place');
  assert.ok(rec.allow?.has('10.1.2.3'));
  assert.ok(rec.events.includes(`cache ${32 << 20}`));
  assert.ok(rec.events.includes('server local zones') && rec.events.includes('stack local zones'));
  assert.ok(rec.events.includes(`max-age ${10 * 86400} retry-window ${2 * 86400}`), rec.events.join(' | '));
  assert.ok(rec.events.indexOf('policy built') < rec.events.indexOf('policy swapped'));
  assert.is(rec.parts.logger.level, 'debug');
  assert.ok(moduleLog.isLevelEnabled('debug'), 'module loggers made before the reload follow the new level');
  // The listener keeps its running value, so the next reload reports it again.
  assert.equal((values['policy-listen'] as Array<{ text: string }>).map((e) => e.text), ['127.0.0.1:10023']);
  const again = await reloadConfig(values, recorder(file).parts);
  assert.equal(again.report.restartNeeded, ['policy-listen']);
  assert.equal(again.report.applied, []);
});

s('replication: peers, key (also a new key in the same file) and intervals apply live; name and listener need a restart', async () => {
  const file = join(dir, 'mx.conf');
  const keyFile = join(dir, 'cluster.key');
  writeFileSync(keyFile, `${generateReplicationKey()}\n`, { mode: 0o600 });
  const base = ['node-name: mx1', 'replication-listen: 127.0.0.1:7410', `replication-key-file: ${keyFile}`, 'peer: mx2=192.0.2.2:7410'];
  writeFileSync(file, `${base.join('\n')}\n`);
  const current = start(file);
  const running = replicationSettingsOf(current)!;
  writeFileSync(file, [...base, 'peer: mx3=192.0.2.3:7410', 'replication-digest-interval: 10m', 'node-name: mx9', ''].filter((l) => l !== 'node-name: mx1').join('\n'));
  const rec = recorder(file, { replication: running });
  const { values, report } = await reloadConfig(current, rec.parts);
  assert.equal(report.restartNeeded, ['node-name']);
  assert.equal(report.applied, ['peer', 'replication-digest-interval']);
  assert.ok(rec.events.includes('replication peers=mx2=192.0.2.2:7410,mx3=192.0.2.3:7410 digest=600000'), rec.events.join('; '));
  assert.is(values['node-name'], 'mx1', 'the name in force stays until a restart');

  // The key file gets a new key, no configuration value changes: applied, and said so.
  writeFileSync(keyFile, `${generateReplicationKey()}\n`, { mode: 0o600 });
  const rec2 = recorder(file, { replication: running });
  const second = await reloadConfig(values, rec2.parts);
  assert.equal(second.report.applied, ['replication-key-file']);
  assert.equal(second.report.restartNeeded, ['node-name']);

  // A key file that cannot be read rejects the whole reload: nothing is applied.
  rmSync(keyFile);
  const rec3 = recorder(file, { replication: running });
  try {
    await reloadConfig(values, rec3.parts);
    assert.unreachable('accepted a missing key file');
  } catch (err) {
    assert.is((err as ControlError).code, 'CONTROL_ERR_FAILED');
    assert.match((err as Error).message, /mx\.conf:2: replication-key-file/, 'placed at its line, as config check does');
  }
  assert.equal(swaps(rec3.events), []);
});

s('replication: turning it on (or off) by reload needs a restart and reconfigures nothing', async () => {
  const file = join(dir, 'mx.conf');
  writeFileSync(file, 'allow: 127.0.0.0/8\n');
  const current = start(file);
  writeFileSync(file, ['allow: 127.0.0.0/8', 'node-name: mx1', 'replication-listen: 127.0.0.1:7410', `replication-key: ${generateReplicationKey()}`, 'peer: mx2=192.0.2.2:7410', ''].join('\n'));
  const rec = recorder(file, { replication: undefined });
  const { report } = await reloadConfig(current, rec.parts);
  assert.equal(report.restartNeeded, ['node-name', 'peer', 'replication-key', 'replication-listen']);
  assert.equal(report.applied, []);
  assert.not.ok(rec.events.some((e) => e.startsWith('replication')));
});

s('changedKeys compares values, not identity', () => {
  const a = loadConfig({}).values;
  const b = loadConfig({}).values;
  assert.equal(changedKeys(a, b), []);
  assert.equal(changedKeys(a, { ...b, delay: 300 }), ['delay']);
});

s('the README names every key a reload leaves to the next restart', () => {
  const readme = readFileSync(join(packageRoot(), 'README.md'), 'utf8');
  const paragraph = /\*\*Reload\.\*\*[\s\S]*?take effect only after a restart/.exec(readme)?.[0] ?? '';
  assert.ok(paragraph, 'the Reload paragraph');
  // Keys the README names by their group instead of one by one.
  const groups: Record<string, string> = {
    'cache-min-ttl': 'the cache TTL clamps', 'cache-max-ttl': 'the cache TTL clamps', 'cache-max-negative-ttl': 'the cache TTL clamps',
    'serve-expired-ttl': 'the cache TTL clamps', 'max-tcp-connections': 'connection limits', 'tcp-idle-timeout-ms': 'connection limits',
    'policy-max-connections': 'connection limits', 'so-rcvbuf': 'socket buffers', 'so-sndbuf': 'socket buffers',
  };
  for (const key of [...RESTART_KEYS, ...REPLICATION_RESTART_KEYS]) {
    const named = groups[key] ?? `\`${key}\``;
    assert.ok(paragraph.includes(named), `the README's Reload paragraph does not name ${key} (as ${named})`);
  }
});

s('a cluster key in a file other users may read is warned about on reload, and a key from a systemd credential gets a note', async () => {
  const file = join(dir, 'mx.conf');
  const key = generateReplicationKey();
  const base = ['node-name: mx1', 'replication-listen: 127.0.0.1:7410', 'peer: mx2=192.0.2.2:7410'];
  writeFileSync(file, `${[...base, `replication-key: ${key}`].join('\n')}\n`);
  chmodSync(file, 0o600);
  const current = start(file);
  const running = replicationSettingsOf(current)!;
  const quiet = recorder(file, { replication: running });
  quiet.parts.settingWarnings = fileSettingWarningsOf;
  const clean = await reloadConfig(current, quiet.parts);
  assert.is(clean.report.warnings, undefined, 'mode 600: nothing to say');
  assert.is(clean.report.notes, undefined, 'a key from the file itself: no note');

  chmodSync(file, 0o644);
  const open = recorder(file, { replication: running });
  open.parts.settingWarnings = fileSettingWarningsOf;
  const warned = await reloadConfig(clean.values, open.parts);
  assert.equal(warned.report.warnings?.length, 1);
  assert.match(warned.report.warnings?.[0] ?? '', /mx\.conf:4: replication-key: the cluster key is in .* which other users may read \(mode 644\)/);
  assert.equal(warned.report.applied, [], 'a warning, not a refusal: the reload went through');

  // Under the unit the key comes from the credential systemd copied at start.
  writeFileSync(file, `${base.join('\n')}\n`);
  const credentials = join(dir, 'credentials');
  mkdirSync(credentials);
  writeFileSync(join(credentials, 'replication-key'), `${key}\n`, { mode: 0o600 });
  const saved = process.env.CREDENTIALS_DIRECTORY;
  process.env.CREDENTIALS_DIRECTORY = credentials;
  try {
    const viaUnit = recorder(file, { replication: running });
    const { report } = await reloadConfig(warned.values, viaUnit.parts);
    assert.equal(report.notes?.length, 1);
    assert.match(report.notes?.[0] ?? '', /systemd credential replication-key, which systemd reads only when the service starts: .*systemctl restart mxsentry/);
  } finally {
    if (saved === undefined) delete process.env.CREDENTIALS_DIRECTORY;
    else process.env.CREDENTIALS_DIRECTORY = saved;
  }
});

s.run();
