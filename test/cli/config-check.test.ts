// Tests for the start-up checks shared by `config check` and `serve`: replication settings and the
// files the values name are reported, each with its key and the line (or flag) that set it, and the
// table/zone/config errors thrown at start are recognised as configuration problems (exit 2).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkStartSettings, fileSettingWarningsOf, isConfigurationError, relativePathWarningsOf, settingWarningsOf, whitelistWarningsOf } from '../../src/cli/config-check.js';
import { loadConfig, type LoadResult } from '../../src/config/load.js';
import { prepareControlSocketPath } from '../../src/control/control-server.js';
import { ConfigError, DnsError, PolicyError, StoreError } from '../../src/util/errors.js';
import { loggedHook } from '../helpers/hook-errors.js';
import { requireRoot } from '../helpers/peers.js';

const s = suite('cli/config-check');

let dir = '';
s.before(loggedHook(() => {
  dir = mkdtempSync(join(tmpdir(), 'mxsentry-check-'));
}));
s.after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function loadText(text: string): LoadResult {
  const file = join(dir, 'mxsentry.conf');
  writeFileSync(file, text);
  const loaded = loadConfig({ file });
  assert.equal(loaded.errors.map((e) => e.message), []);
  return loaded;
}

async function problems(loaded: LoadResult): Promise<string[]> {
  return (await checkStartSettings(loaded)).map((e) => e.message.split(`${dir}/`).join(''));
}

s('replication settings serve would refuse, each with its key and line', async () => {
  const loaded = loadText(['node-name: mx 1', 'peer: mx2=192.0.2.2:7410', 'peer: mx3', 'replication-key: abc'].join('\n'));
  const found = await checkStartSettings(loaded);
  assert.equal(found.map((e) => [e.key, e.line]), [['node-name', 1], ['peer', 3], ['replication-key', 4]]);
  const text = await problems(loaded);
  assert.match(text[0]!, /^mxsentry\.conf:1: node-name: "mx 1" must be/);
  assert.match(text[1]!, /^mxsentry\.conf:3: peer: "mx3" is not NAME=HOST:PORT/);
  assert.match(text[2]!, /^mxsentry\.conf:4: replication-key: a replication key is 64 hex digits/);
});

s('a missing key file, and a listener without a key', async () => {
  assert.equal(await problems(loadText('peer: mx2=192.0.2.2:7410\nreplication-key-file: /nonexistent/key\n')), [
    "mxsentry.conf:2: replication-key-file: cannot use /nonexistent/key: ENOENT: no such file or directory, open '/nonexistent/key'",
  ]);
  const noKey = await problems(loadText('replication-listen: 127.0.0.1:7410\n'));
  assert.is(noKey.length, 1);
  assert.match(noKey[0]!, /^replication-key: replication is configured .* but no key is set/);
});

s('named files: each value with its own line; flags named as flags', async () => {
  const recipients = join(dir, 'recipients');
  writeFileSync(recipients, 'user@example.com OK\nnot-an-address OK\nalso-not OK\n');
  const text = await problems(
    loadText(
      [
        `recipients-file: ${recipients}`,
        'recipients-file: /nonexistent/recipients',
        'known-networks-file: /nonexistent/networks',
        'whitelist-clients: /nonexistent/clients',
        'whitelist-recipients: /nonexistent/whitelist.local',
        'whitelist-recipients: /nonexistent/recipients-wl',
        'local-zones-file: /nonexistent/zones',
      ].join('\n'),
    ),
  );
  assert.equal(
    text.map((t) => t.replace(/: (ENOENT|expected).*/, '')),
    [
      // Every bad line of a table, each a problem of its own.
      'mxsentry.conf:1: recipients-file: recipients:2',
      'mxsentry.conf:1: recipients-file: recipients:3',
      'mxsentry.conf:2: recipients-file: cannot read recipient table /nonexistent/recipients',
      'mxsentry.conf:3: known-networks-file: cannot read CIDR table /nonexistent/networks',
      'mxsentry.conf:4: whitelist-clients: cannot read whitelist /nonexistent/clients',
      'mxsentry.conf:6: whitelist-recipients: cannot read whitelist /nonexistent/recipients-wl',
      'mxsentry.conf:7: local-zones-file: cannot read local zones file /nonexistent/zones',
    ],
  );
  const flagged = await checkStartSettings(loadConfig({ flags: { 'recipients-file': ['/nonexistent/r'], peer: ['mx2'], 'replication-key': 'ab'.repeat(32) } }));
  assert.equal(
    flagged.map((e) => e.message.replace(/(NAME=HOST:PORT|\/nonexistent\/r).*/, '$1')),
    ['--peer: "mx2" is not NAME=HOST:PORT', '--recipients-file: cannot read recipient table /nonexistent/r'],
  );
});

s('a local zones file: each bad line a problem of its own, at the line naming the file', async () => {
  const zones = join(dir, 'zones');
  writeFileSync(zones, 'local-zone: "a.example." staticc\nlocal-zone: "b.example." static\nlocal-data: "b.example. IN A x"\n');
  const text = await problems(loadText(['delay: 300', `local-zones-file: ${zones}`].join('\n')));
  assert.equal(
    text.map((t) => t.split(`${dir}/`).join('').replace(/(zones:\d+): .*/, '$1')),
    ['mxsentry.conf:2: local-zones-file: zones:1', 'mxsentry.conf:2: local-zones-file: zones:3'],
  );
});

s('peers without replication-listen: a warning at the first peer line (this node would never receive)', () => {
  const key = `replication-key: ${'ab'.repeat(32)}`;
  // The key in the file is fine here: the file is the admin's alone (mode 600).
  const private600 = (text: string) => {
    loadText(text);
    chmodSync(join(dir, 'mxsentry.conf'), 0o600);
    return loadConfig({ file: join(dir, 'mxsentry.conf') });
  };
  const oneWay = settingWarningsOf(private600([key, 'node-name: mx1', 'peer: mx2=192.0.2.2:7410', 'peer: mx3=192.0.2.3:7410'].join('\n')));
  assert.equal(oneWay.length, 1);
  assert.match(oneWay[0]!, /mxsentry\.conf:3: peer: peers are configured but replication-listen is not: .* never receives theirs/);
  assert.equal(fileSettingWarningsOf(private600([key, 'node-name: mx1', 'peer: mx2=192.0.2.2:7410'].join('\n'))), [], 'the daemon logs this one itself (the replicator), not as a file warning');
  assert.equal(settingWarningsOf(private600([key, 'node-name: mx1', 'replication-listen: 192.0.2.1:7410', 'peer: mx2=192.0.2.2:7410'].join('\n'))), []);
  assert.equal(settingWarningsOf(loadText('delay: 300')), []);
});

s('a DNS list budget beyond the decision\'s budget is a warning saying what the lists get', () => {
  const w = settingWarningsOf(loadText('dns-list-budget-ms: 5000\n'));
  assert.equal(w.length, 1);
  assert.match(w[0] ?? '', /:1: dns-list-budget-ms: 5000 ms does not fit within policy-budget-ms \(3000 ms, less 100 ms .*\): the lists get 2900 ms/);
  assert.equal(settingWarningsOf(loadText('dns-list-budget-ms: 2000\n')), []);
});

s('a cluster key written in a config file other users may read is a warning; mode 600 or a flag is not', () => {
  const text = `node-name: mx1\nreplication-listen: 127.0.0.1:7410\npeer: mx2=127.0.0.2:7410\nreplication-key: ${'ab'.repeat(32)}\n`;
  const file = join(dir, 'mxsentry.conf');
  writeFileSync(file, text);
  chmodSync(file, 0o644);
  const open = settingWarningsOf(loadConfig({ file }));
  assert.equal(open.length, 1);
  assert.equal(fileSettingWarningsOf(loadConfig({ file })), open, 'serve logs it at start and reload reports it');
  assert.match(open[0] ?? '', /:4: replication-key: the cluster key is in .*which other users may read \(mode 644\)/);
  chmodSync(file, 0o600);
  assert.equal(settingWarningsOf(loadConfig({ file })), []);
  writeFileSync(file, 'node-name: mx1\n');
  chmodSync(file, 0o644);
  assert.equal(settingWarningsOf(loadConfig({ file, flags: { 'replication-key': 'ab'.repeat(32) } })), [], 'a key given as a flag is not in the file');
});

s('whitelist lines serve would skip are warnings placed at the line naming the file', async () => {
  const clients = join(dir, 'whitelist_clients');
  writeFileSync(clients, '# postgrey format\nmail.example.org\nmx example.org\n');
  const recipients = join(dir, 'whitelist_recipients');
  writeFileSync(recipients, 'postmaster@\nabuse @example.org\n');
  const loaded = loadText(['delay: 300', `whitelist-clients: ${clients}`, `whitelist-recipients: ${recipients}`].join('\n'));
  assert.equal(await problems(loaded), [], 'serve starts: skipped lines are no problem');
  const warnings = (await whitelistWarningsOf(loaded)).map((w) => w.split(`${dir}/`).join(''));
  assert.equal(warnings, [
    'mxsentry.conf:2: whitelist-clients: whitelist_clients:3: doesn\'t look like a hostname: "mx example.org"; line ignored',
    'mxsentry.conf:3: whitelist-recipients: whitelist_recipients:2: doesn\'t look like an address: "abuse @example.org"; line ignored',
  ]);
});

s('relative paths set in the file are warnings at their line; absolute ones, defaults and flags are not', () => {
  const loaded = loadText(['whitelist-clients: /etc/postgrey/whitelist_clients', 'whitelist-clients: wl_clients', 'root-hints: ../hints', 'control-socket: /run/mxsentry/control.sock'].join('\n'));
  const warnings = relativePathWarningsOf(loaded).map((w) => w.split(`${dir}/`).join(''));
  assert.is(warnings.length, 2);
  assert.match(warnings[0]!, /^mxsentry\.conf:3: root-hints: "\.\.\/hints" is relative: serve reads it from its working directory \(here /);
  assert.match(warnings[1]!, /^mxsentry\.conf:2: whitelist-clients: "wl_clients" is relative: .*not from the config file's folder/);
  assert.equal(relativePathWarningsOf(loadConfig({ flags: { 'whitelist-clients': 'wl' } })), [], 'a flag is relative to where it is typed');
  assert.equal(relativePathWarningsOf(loadConfig({})), [], 'the default data-dir ./data is not the file\'s');
});

s('a bad value and a bad peer line are reported in one run; replication waits for its own keys only', async () => {
  const file = join(dir, 'mxsentry.conf');
  writeFileSync(file, ['delay: sixty', 'peer: mx1=192.0.2.1'].join('\n'));
  const found = await checkStartSettings(loadConfig({ file }));
  assert.equal(found.map((e) => [e.key, e.line]).slice(0, 2), [['delay', 1], ['peer', 2]], found.map((e) => e.message).join('\n'));
  // A replication key that failed to load holds its default: the settings derived from it are not checked.
  writeFileSync(file, ['replication-listen: nowhere', 'peer: mx1=192.0.2.1'].join('\n'));
  const listenFailed = await checkStartSettings(loadConfig({ file }));
  assert.equal(listenFailed.map((e) => e.key), ['replication-listen'], listenFailed.map((e) => e.message).join('\n'));
});

s('a bad value and a missing file are reported in one run; replication waits for valid values', async () => {
  const file = join(dir, 'mxsentry.conf');
  writeFileSync(file, ['delay: -5', `recipients-file: ${join(dir, 'no-such-table')}`, 'node-name: mx 1'].join('\n'));
  const loaded = loadConfig({ file });
  assert.is(loaded.errors.length, 1, 'loading sees the bad delay only');
  const found = await checkStartSettings(loaded);
  assert.equal(found.map((e) => [e.key, e.line]), [['delay', 1], ['recipients-file', 2]]);
  assert.match(found[1]!.message, 'no-such-table');
  // An unreadable config file: every value is a default, nothing more is checked.
  const unread = loadConfig({ file: join(dir, 'missing.conf') });
  assert.equal((await checkStartSettings(unread)).map((e) => e.code), ['CONFIG_ERR_READ']);
});

s('a data-dir or control-socket too long for a unix socket path is a problem of that key', async () => {
  const long = `/tmp/${'d'.repeat(100)}`;
  const found = await problems(loadText(`data-dir: ${long}\n`));
  assert.equal(found.length, 2, found.join('\n'));
  assert.match(found[0] ?? '', /data-dir: the lock socket .*serve\.lock would be 116 bytes, beyond the unix socket limit of 107/);
  assert.match(found[1] ?? '', /data-dir: the control socket .*control\.sock would be 118 bytes/);
  // A short control-socket leaves only the lock; a long control-socket alone is its own key's problem.
  assert.equal((await problems(loadText(`data-dir: ${long}\ncontrol-socket: /run/mx.sock\n`))).length, 1);
  const sock = await problems(loadText(`control-socket: /tmp/${'s'.repeat(110)}.sock\n`));
  assert.match(sock.join('\n'), /control-socket: the control socket .* name a shorter path/);
});

/** What serve's control server says when it refuses the socket path (its ControlError message). */
async function serveRefusal(socket: string): Promise<string> {
  try {
    await prepareControlSocketPath(socket);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error(`serve would take ${socket}`);
}

s('a control socket folder serve refuses is a problem of its key, in serve\'s words; a missing one is left to serve', async () => {
  const open = join(dir, 'open-data');
  mkdirSync(open);
  chmodSync(open, 0o777);
  const refusal = await serveRefusal(join(open, 'control.sock'));
  assert.match(refusal, /writable by everyone \(mode 777\)/);
  assert.equal(await problems(loadText(`log-level: info\ndata-dir: ${open}\n`)), [`mxsentry.conf:2: data-dir: ${refusal.split(`${dir}/`).join('')}`]);
  // serve's own check (before it opens anything) is the same list.
  const asServe = await checkStartSettings(loadText(`data-dir: ${open}\n`), { serve: true });
  assert.equal(asServe.map((e) => e.key), ['data-dir']);
  // The socket elsewhere: that folder is judged, under its own key.
  const sock = await problems(loadText(`data-dir: ${open}\ncontrol-socket: ${join(open, 'c.sock')}\n`));
  assert.equal(sock.map((t) => t.replace(/ folder .*/, '')), ['mxsentry.conf:2: control-socket: control socket']);
  const own = join(dir, 'own-data');
  mkdirSync(own, { mode: 0o750 });
  assert.equal(await problems(loadText(`data-dir: ${open}\ncontrol-socket: ${join(own, 'c.sock')}\n`)), []);
  // A sticky folder (as /tmp) is accepted by serve, so here too; a data-dir serve will make is not judged.
  chmodSync(open, 0o1777);
  assert.equal(await problems(loadText(`data-dir: ${open}\n`)), []);
  assert.equal(await problems(loadText(`data-dir: ${join(dir, 'not-yet')}\n`)), []);
});

s('a control socket folder of another user: a problem for serve, a warning for root\'s check (serve may run as that user)', async () => {
  if (!requireRoot('control socket folder of another user')) return;
  const theirs = join(dir, 'their-data');
  mkdirSync(theirs, { mode: 0o750 });
  chownSync(theirs, 1, 1);
  const loaded = loadText(`data-dir: ${theirs}\n`);
  const refusal = await serveRefusal(join(theirs, 'control.sock'));
  assert.match(refusal, /belongs to uid 1, not to this user \(uid 0\) or root/);
  assert.equal((await checkStartSettings(loaded, { serve: true })).map((e) => e.message), [`${join(dir, 'mxsentry.conf')}:1: data-dir: ${refusal}`]);
  assert.equal(await checkStartSettings(loaded), []);
  const warnings = settingWarningsOf(loaded);
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, /^.*mxsentry\.conf:1: data-dir: control socket folder .*their-data belongs to uid 1: serve takes it only when run as that user \(run as root, it refuses it\)/);
});

s('root hints without any address are a problem of root-hints', async () => {
  const hints = join(dir, 'hints-no-addr');
  writeFileSync(hints, '. 3600000 NS a.root-servers.net.\n');
  const found = await problems(loadText(`root-hints: ${hints}\n`));
  assert.equal(found.length, 1, found.join('\n'));
  assert.match(found[0] ?? '', /root-hints: .*holds no A or AAAA record for its root servers/);
});

s('a dnsbl-reply-name must name the zone of a dnsbl line (a typo would leave the key in rejects)', async () => {
  const typo = await problems(loadText('dnsbl: KEY.zen.example\ndnsbl-reply-name: KEY.zen.exmaple=zen.example.org\n'));
  assert.equal(typo.length, 1, typo.join('\n'));
  assert.match(typo[0] ?? '', /:2: dnsbl-reply-name: "key\.zen\.exmaple" is not the zone of any dnsbl line \(key\.zen\.example\)/);
  assert.equal(await problems(loadText('dnsbl: KEY.zen.example=127.0.0.[2..11]*2\ndnsbl-reply-name: key.ZEN.example.=zen.example.org\n')), []);
});

s('a valid configuration has no start-up problem', async () => {
  assert.equal(await problems(loadText('delay: 30\n')), []);
});

s('configuration errors thrown at start are told from host errors', () => {
  assert.ok(isConfigurationError(new ConfigError('CONFIG_ERR_VALUE', 'peer: x', { key: 'peer' })));
  assert.ok(isConfigurationError(new PolicyError('POLICY_ERR_TABLE_READ', 'cannot read recipient table /x')));
  assert.ok(isConfigurationError(new PolicyError('POLICY_ERR_BAD_WHITELIST', 'cannot read whitelist /x')));
  assert.ok(isConfigurationError(new DnsError('DNS_ERR_ZONE_SYNTAX', 'zones:3: bad')));
  assert.ok(isConfigurationError(new DnsError('DNS_ERR_ROOT_HINTS', 'cannot read root hints /x')));
  assert.not.ok(isConfigurationError(new DnsError('DNS_ERR_LISTEN', 'address in use')));
  assert.not.ok(isConfigurationError(new StoreError('STORE_ERR_OPEN', 'disk full')));
  assert.not.ok(isConfigurationError(new Error('EADDRINUSE')));
});

s.run();
