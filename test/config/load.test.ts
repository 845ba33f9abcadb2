// Tests for the configuration loader's value parsing: range errors speak the key's own unit (the
// form the file is written in), and the stored values keep their units (durations in seconds).
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, placeConfigError, type LoadResult } from '../../src/config/load.js';
import { ConfigError } from '../../src/util/errors.js';
import { loggedHook } from '../helpers/hook-errors.js';

const s = suite('config/load');

let dir = '';
s.before(loggedHook(() => {
  dir = mkdtempSync(join(tmpdir(), 'mxsentry-load-'));
}));
s.after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function loadText(text: string): LoadResult {
  const file = join(dir, 'mxsentry.conf');
  writeFileSync(file, text);
  return loadConfig({ file });
}

function messages(r: LoadResult): string[] {
  return r.errors.map((e) => e.message.replace(`${dir}/`, ''));
}

s('an empty config file name is an error, not "no file" (defaults would ignore the admin\'s file)', () => {
  const r = loadConfig({ file: '' });
  assert.equal(r.errors.map((e) => e.code), ['CONFIG_ERR_READ']);
  assert.match(r.errors[0]?.message ?? '', 'config file name is empty');
});

s('recipient-delimiter may be empty (Postfix recipient_delimiter =, no extensions); other strings may not', () => {
  const file = loadText('recipient-delimiter: ""\n');
  assert.equal(messages(file), []);
  assert.is(file.values['recipient-delimiter'], '');
  const flag = loadConfig({ flags: { 'recipient-delimiter': '' } });
  assert.equal(flag.errors, []);
  assert.is(flag.values['recipient-delimiter'], '');
  assert.is(loadConfig({}).values['recipient-delimiter'], '+');
  // node-name's empty value is its default (the host name), so the example's "#node-name:" line
  // may be uncommented as it stands; other strings must not be empty.
  const nodeName = loadText('node-name:\n');
  assert.equal(messages(nodeName), []);
  assert.is(nodeName.values['node-name'], '');
  assert.match(messages(loadText('greylist-text: ""\n')).join('\n'), 'empty value');
});

s('dnsbl-reply-name is ZONE=SHOWN with two domain names; repeatable', () => {
  const ok = loadText('dnsbl-reply-name: AbC123.zen.dq.spamhaus.net=zen.spamhaus.org\ndnsbl-reply-name: key.dbl.dq.spamhaus.net.=dbl.spamhaus.org\n');
  assert.equal(messages(ok), []);
  assert.equal(ok.values['dnsbl-reply-name'], ['AbC123.zen.dq.spamhaus.net=zen.spamhaus.org', 'key.dbl.dq.spamhaus.net.=dbl.spamhaus.org']);
  assert.match(messages(loadText('dnsbl-reply-name: zen.spamhaus.org\n')).join('\n'), 'is not ZONE=SHOWN');
  assert.match(messages(loadText('dnsbl-reply-name: a.example=not a name\n')).join('\n'), '"not a name" is not a domain name');
});

s('greylist-action must defer (never reject); greylist-text is one printable line; ipv4cidr/ipv6cidr in range', () => {
  assert.is(loadText('greylist-action: 451\n').values['greylist-action'], '451');
  assert.is(loadText('greylist-action: DEFER\n').values['greylist-action'], 'DEFER');
  assert.is(loadText('greylist-action: defer_if_permit\n').values['greylist-action'], 'defer_if_permit', 'access(5) actions are case-insensitive');
  for (const bad of ['REJECT', '554', '421', '45']) {
    assert.match(messages(loadText(`greylist-action: ${bad}\n`)).join('\n'), 'is not DEFER_IF_PERMIT, DEFER_IF_REJECT, DEFER or a 4NN reply code', bad);
  }
  assert.is(loadText('greylist-text: "Greylisted, see https://mx.example/help/%r.html"\n').values['greylist-text'], 'Greylisted, see https://mx.example/help/%r.html');
  assert.match(messages(loadText(`greylist-text: ${'x'.repeat(401)}\n`)).join('\n'), 'is 401 characters long; at most 400 fit an SMTP reply');
  assert.match(messages(loadText('greylist-text: caf\u00e9\n')).join('\n'), 'holds "\u00e9" at character 4: it must be printable ASCII on one line');
  assert.is(loadText('greylist-text: 4.7.1 Greylisted, retry in %s s\n').values['greylist-text'], '4.7.1 Greylisted, retry in %s s');
  for (const bad of ['5.7.1 Go away', '2.0.0 fine', '%s seconds'.replace('%s', '30')]) {
    assert.match(messages(loadText(`greylist-text: ${bad}\n`)).join('\n'), 'a text that starts with a digit must start with a temporary status code (4.X.X)', bad);
  }
  // A reply code first (as in "450 4.7.1 ..."): the message says Postfix sends that itself.
  assert.match(messages(loadText('greylist-text: 450 4.7.1 wait %s\n')).join('\n'), 'starts with the reply code 450: Postfix sends the reply code itself (greylist-action); the text may start with a 4.X.X status code, e.g. "4.7.1 wait %s"');
  const flag = loadConfig({ flags: { 'greylist-text': 'a\tb' } });
  assert.match(flag.errors.map((e) => e.message).join('\n'), 'printable ASCII');
  assert.equal([loadText('ipv4cidr: 16\n').values['ipv4cidr'], loadText('ipv6cidr: 48\n').values['ipv6cidr']], [16, 48]);
  assert.match(messages(loadText('ipv4cidr: 33\n')).join('\n'), 'above the maximum');
  // Sizes past any host's memory (and past exact integers) are refused, not taken.
  assert.match(messages(loadText('cache-size: 99999999999g\n')).join('\n'), 'cache-size: 99999999999g is above the maximum 64g');
  assert.match(messages(loadText('store-map-size: 2048g\n')).join('\n'), 'above the maximum 1024g');
  assert.is(loadText('cache-size: 4g\n').values['cache-size'], 4 * 1024 ** 3);
});

s('a list key given one empty value is the empty list (a flag clears the file\'s lines); an empty item among others is an error', () => {
  const file = join(dir, 'lists.conf');
  writeFileSync(file, 'dnsbl: zen.spamhaus.org\ndnsbl: bl.spamcop.net\n');
  assert.equal(loadConfig({ file }).values['dnsbl'], ['zen.spamhaus.org', 'bl.spamcop.net']);
  const cleared = loadConfig({ file, flags: { dnsbl: [''] } });
  assert.equal(cleared.errors, []);
  assert.equal(cleared.values['dnsbl'], []);
  assert.equal(loadConfig({ flags: { 'known-network': [''] } }).values['known-network'], []);
  assert.match(loadConfig({ flags: { dnsbl: ['zen.spamhaus.org', ''] } }).errors.map((e) => e.message).join('\n'), 'dnsbl');
  // A listener list cannot be emptied: the daemon would start, say it is ready and serve nothing.
  for (const key of ['dns-listen', 'policy-listen']) {
    const flag = loadConfig({ flags: { [key]: [''] } });
    assert.equal(flag.errors.map((e) => e.message), [`--${key}: empty value: at least one address is needed (an empty list would serve nothing)`]);
    assert.match(messages(loadText(`${key}: ""\n`)).join('\n'), `:1: ${key}: empty value`);
  }
});

s('metrics-listen and replication-listen may be empty ("empty: off"), in the file and as a flag', () => {
  const file = join(dir, 'metrics.conf');
  writeFileSync(file, 'metrics-listen: 127.0.0.1:9153\n');
  for (const key of ['metrics-listen', 'replication-listen']) {
    const fromFile = loadText(`${key}:\n`);
    assert.equal(messages(fromFile), [], key);
    assert.is(fromFile.values[key], '', key);
    assert.equal(loadText(`${key}: ""\n`).errors, [], key);
  }
  const off = loadConfig({ file, flags: { 'metrics-listen': '' } });
  assert.equal(off.errors, []);
  assert.is(off.values['metrics-listen'], '', 'the flag turns the file\'s endpoint off for one run');
  assert.match(messages(loadText('metrics-listen: 127.0.0.1\n')).join('\n'), 'is not ADDRESS:PORT');
});

s('an empty data-dir is a configuration error (config check and serve agree), in the file and as a flag', () => {
  for (const text of ['data-dir:\n', 'data-dir: ""\n']) {
    assert.equal(messages(loadText(text)), [`mxsentry.conf:1: data-dir: empty value: name a folder, or leave the key out for the default ./data`], text);
  }
  assert.match(messages(loadConfig({ flags: { 'data-dir': '' } })).join('\n'), /--data-dir: empty value/);
  // Other path keys keep "empty: the default" (root-hints: the shipped zones/named.root).
  assert.equal(loadText('root-hints:\ncontrol-socket:\n').errors, []);
});

s('range errors show the value as written and the limit in the key\'s unit, in the file\'s line order', () => {
  const r = loadText(['retry-window: 172800', 'max-age: 0', 'delay: 2d', 'cache-size: 512k', 'so-rcvbuf: 2g', 'upstream-port: 70000', 'replication-timeout: 1h'].join('\n'));
  assert.equal(messages(r), [
    'mxsentry.conf:1: retry-window: 172800 days is above the maximum 30d',
    'mxsentry.conf:2: max-age: 0 days is below the minimum 1d',
    'mxsentry.conf:3: delay: 2d is above the maximum 86400 seconds',
    'mxsentry.conf:4: cache-size: 512k is below the minimum 1m',
    'mxsentry.conf:5: so-rcvbuf: 2g is above the maximum 1g',
    'mxsentry.conf:6: upstream-port: 70000 is above the maximum 65535',
    'mxsentry.conf:7: replication-timeout: 1h is above the maximum 600 seconds',
  ]);
});

s('a value that is no duration is shown examples in its key\'s unit (bare numbers: seconds or days)', () => {
  const r = loadText(['delay: sixty', 'max-age: x'].join('\n'));
  assert.equal(messages(r).sort(), [
    'mxsentry.conf:1: delay: "sixty" is not a duration (e.g. 60 for seconds, 90s, 12h, 2d)',
    'mxsentry.conf:2: max-age: "x" is not a duration (e.g. 35 for days, 12h, 2d)',
  ]);
});

s('known-network with host bits set is refused as Postfix refuses it, not widened to the network', () => {
  const r = loadText(['known-network: 192.0.2.25/24', 'known-network: 2001:db8::25/64', 'allow: 10.1.2.3/8'].join('\n'));
  assert.equal(messages(r), [
    'mxsentry.conf:1: known-network: non-null host address bits in "192.0.2.25/24", perhaps you mean "192.0.2.0/24"',
    'mxsentry.conf:2: known-network: non-null host address bits in "2001:db8::25/64", perhaps you mean "2001:db8::/64"',
  ]);
  const flag = loadConfig({ flags: { 'known-network': ['192.0.2.25/24'] } });
  assert.match(flag.errors[0]?.message ?? '', /--known-network: .*non-null host address bits in "192\.0\.2\.25\/24"/);
  const ok = loadText(['known-network: 192.0.2.0/24', 'known-network: 192.0.2.25', 'known-network: 192.0.2.25/32'].join('\n'));
  assert.equal(messages(ok), []);
  assert.equal(ok.values['known-network'], ['192.0.2.0/24', '192.0.2.25/32', '192.0.2.25/32']);
});

s('a bare number on a second-unit key is named as seconds; retry-window\'s minimum is a minute', () => {
  const r = loadConfig({ flags: { delay: '90000', 'retry-window': '30s' } });
  assert.equal(messages(r), [
    '--delay: 90000 seconds is above the maximum 86400 seconds',
    '--retry-window: 30s is below the minimum 1m',
  ]);
});

s('a retry-window shorter than the delay is refused: every retry after the delay would start over, nothing could pass', () => {
  const r = loadText('# greylisting\ndelay: 1h\nretry-window: 30m\n');
  const why = 'a sender retrying after the delay would start over every time, so no mail could ever pass greylisting';
  assert.equal(messages(r), [`mxsentry.conf:3: retry-window: 30m is shorter than delay (3600 seconds): ${why}`]);
  assert.equal([r.errors[0]?.code, r.errors[0]?.key, r.errors[0]?.line], ['CONFIG_ERR_VALUE', 'retry-window', 3]);
  assert.equal(messages(loadConfig({ flags: { delay: '7200', 'retry-window': '1h' } })), [`--retry-window: 1h is shorter than delay (7200 seconds): ${why}`]);
  // The delay alone cannot do it (its maximum, a day, is below the default window of 2 days).
  assert.equal(messages(loadConfig({ flags: { delay: '86400' } })), []);
  // Equal is allowed, and so is any window from the delay up.
  assert.equal(messages(loadText('delay: 1h\nretry-window: 1h\n')), []);
  assert.equal(messages(loadText('delay: 300\nretry-window: 2\n')), []);
});

s('two listeners on one address and port are refused at the later line: the same line twice, two keys, a wildcard', () => {
  const each = 'each listener needs its own address:port';
  assert.equal(messages(loadText('dns-listen: 127.0.0.1:5399\npolicy-listen: 127.0.0.1:5399\nmetrics-listen: 127.0.0.1:5399\n')), [
    `mxsentry.conf:2: policy-listen: 127.0.0.1:5399 is also dns-listen (line 1); ${each}`,
    `mxsentry.conf:3: metrics-listen: 127.0.0.1:5399 is also dns-listen (line 1); ${each}`,
  ]);
  assert.equal(messages(loadText('dns-listen: [::1]:5353\ndns-listen: [::1]:5353\n')), [`mxsentry.conf:2: dns-listen: [::1]:5353 is given twice (line 1); ${each}`]);
  assert.equal(messages(loadText('policy-listen: 0.0.0.0:10023\nreplication-listen: 127.0.0.1:10023\n')), [
    `mxsentry.conf:2: replication-listen: 127.0.0.1:10023 is also policy-listen (line 1), 0.0.0.0:10023; ${each}`,
  ]);
  // Against a default, and from a flag.
  assert.equal(messages(loadText('policy-listen: 127.0.0.1:53\n')), [`mxsentry.conf:1: policy-listen: 127.0.0.1:53 is also dns-listen (its default); ${each}`]);
  assert.equal(messages(loadConfig({ flags: { 'metrics-listen': '127.0.0.1:10023' } })), [`--metrics-listen: 127.0.0.1:10023 is also policy-listen (its default); ${each}`]);
  // Other ports, other addresses, the other family's wildcard and port 0 (any free port) are fine.
  assert.equal(messages(loadText('dns-listen: 127.0.0.1:5353\ndns-listen: [::]:5353\npolicy-listen: 127.0.0.2:5353\nmetrics-listen: 127.0.0.1:0\nreplication-listen: 127.0.0.1:0\n')), []);
});

s('stored values keep their units: durations in seconds, sizes in bytes', () => {
  const r = loadText('retry-window: 12h\nmax-age: 35\ndelay: 5m\ncache-size: 128m\n');
  assert.equal(r.errors, []);
  assert.is(r.values['retry-window'], 43200);
  assert.is(r.values['max-age'], 35 * 86400);
  assert.is(r.values['delay'], 300);
  assert.is(r.values['cache-size'], 128 * 1024 ** 2);
});

s('a problem found after loading is placed at the line or flag that set its key', () => {
  const r = loadText('# cluster\npeer: mx2=192.0.2.2:1\npeer: mx3\nnode-name: mx1\n');
  const placed = placeConfigError(r, new ConfigError('CONFIG_ERR_VALUE', 'peer: "mx3" is bad', { key: 'peer', index: 1 }));
  assert.is(placed.message.replace(`${dir}/`, ''), 'mxsentry.conf:3: peer: "mx3" is bad');
  assert.equal([placed.key, placed.line, placed.index, placed.code], ['peer', 3, 1, 'CONFIG_ERR_VALUE']);
  const flag = loadConfig({ flags: { 'node-name': 'mx 1' } });
  assert.is(placeConfigError(flag, new ConfigError('CONFIG_ERR_VALUE', 'node-name: bad', { key: 'node-name' })).message, '--node-name: bad');
  // A key left at its default was set nowhere: the message stays as it is.
  assert.is(placeConfigError(r, new ConfigError('CONFIG_ERR_VALUE', 'replication-key: none', { key: 'replication-key' })).message, 'replication-key: none');
});

s('a key set twice is one problem, placed at the second occurrence (file line or flag)', () => {
  assert.equal(messages(loadText('delay: 60\ndelay: 90\n')), ['mxsentry.conf:2: "delay" is set more than once (line 1, line 2)']);
  const flags = loadConfig({ flags: { delay: ['5', '6'] } });
  assert.equal(flags.errors.map((e) => e.message), ['--delay: "delay" is set more than once (--delay, --delay)']);
});

s('a key set twice with bad values: the repetition and each bad value are reported at once', () => {
  assert.equal(messages(loadText('greylist-action: 550\ndelay: 5\ngreylist-action: 421\n')), [
    'mxsentry.conf:1: greylist-action: "550" is not DEFER_IF_PERMIT, DEFER_IF_REJECT, DEFER or a 4NN reply code other than 421 (greylisting defers mail: it never rejects it, nor drops the connection)',
    'mxsentry.conf:3: "greylist-action" is set more than once (line 1, line 3)',
    'mxsentry.conf:3: greylist-action: "421" is not DEFER_IF_PERMIT, DEFER_IF_REJECT, DEFER or a 4NN reply code other than 421 (greylisting defers mail: it never rejects it, nor drops the connection)',
  ]);
});

s.run();
