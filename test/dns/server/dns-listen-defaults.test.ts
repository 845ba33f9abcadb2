// Which dns-listen addresses the daemon binds: the built-in default ([::1]:53 included) on a host
// without IPv6 loopback skips ::1 with a warning; addresses the admin wrote are kept as written.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadConfig } from '../../../src/config/load.js';
import { dnsListenEndpoints } from '../../../src/main.js';
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

s.run();
