// Which dns-listen addresses the daemon binds: the built-in default ([::1]:53 included) on a host
// without IPv6 loopback skips ::1 with a warning; addresses the admin wrote are kept as written.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../../../src/config/load.js';
import { createDnsStack, dnsListenEndpoints, hostHasIpv6Loopback } from '../../../src/main.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../../../src/util/clock.js';
import { capturingLogger } from '../../helpers/capturing-logger.js';

const s = suite('dns listen defaults');

const texts = (xs: Array<{ text: string }>): string[] => xs.map((e) => e.text);

s('the default on a host with ::1: both addresses, no warning', () => {
  const { logger, lines } = capturingLogger();
  const v = loadConfig({}).values;
  assert.equal(texts(dnsListenEndpoints(v, logger, () => true)), ['127.0.0.1:53', '[::1]:53']);
  assert.equal(lines(), []);
});

s('the default on a host without IPv6 loopback: [::1]:53 skipped, with a warning saying so', () => {
  const { logger, lines } = capturingLogger();
  const v = loadConfig({}).values;
  assert.equal(texts(dnsListenEndpoints(v, logger, () => false)), ['127.0.0.1:53']);
  const warn = lines().find((l) => l.level === 'warn');
  assert.ok(warn, JSON.stringify(lines()));
  assert.equal(warn.skipped, ['[::1]:53']);
  assert.match(String(warn.msg), 'no IPv6 loopback');
});

s('addresses the admin wrote are kept, ::1 included: a failing bind must fail the start', () => {
  const { logger, lines } = capturingLogger();
  const v = loadConfig({ flags: { 'dns-listen': ['[::1]:5353', '127.0.0.1:5353'] } }).values;
  assert.equal(texts(dnsListenEndpoints(v, logger, () => false)), ['[::1]:5353', '127.0.0.1:5353']);
  assert.equal(lines(), []);
});

// Under the systemd unit (RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX) Node's interface list
// throws EAFNOSUPPORT: the default start must not fail on it.
s('IPv6 loopback is detected without netlink, from /proc/net/if_inet6', () => {
  const refused = (): never => {
    throw new Error('A system error occurred: uv_interface_addresses returned Unknown system error 97');
  };
  const withLo = '00000000000000000000000000000001 01 80 10 80       lo\nfe8000000000000000fc00fffe000001 04 40 20 80     eth0\n';
  assert.is(hostHasIpv6Loopback(refused, () => withLo), true);
  assert.is(hostHasIpv6Loopback(refused, () => 'fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n'), false);
  const noFile = (): never => {
    throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
  };
  assert.is(hostHasIpv6Loopback(refused, noFile), false);
  assert.is(hostHasIpv6Loopback(() => ({ lo: [{ address: '::1', netmask: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', family: 'IPv6', mac: '00:00:00:00:00:00', internal: true, cidr: '::1/128', scopeid: 0 }] }), noFile), true);
});

s('root hints all on loopback without query-loopback: a warning that those servers are never asked', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxsentry-hints-'));
  try {
    const hints = join(dir, 'hints');
    writeFileSync(hints, '. 3600000 NS a.root-servers.net.\na.root-servers.net. 3600000 A 127.9.9.9\n');
    const warned = (flags: Record<string, unknown>): string[] => {
      const { logger, lines } = capturingLogger();
      createDnsStack(loadConfig({ flags: { 'root-hints': hints, ...flags } }).values, logger, new ManualClock());
      return lines().filter((l) => l.level === 'warn').map((l) => String(l.msg));
    };
    assert.equal(warned({}).length, 1);
    assert.match(warned({})[0]!, /every root hint address is on loopback and query-loopback is off/);
    assert.equal(warned({ 'query-loopback': true }), []);
    // The shipped hints: no warning.
    assert.equal(warned({ 'root-hints': '' }), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

s.run();
