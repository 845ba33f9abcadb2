// Tests for step 5: known networks from a cidr: table, v4/v6/mapped clients, Postfix first-match
// semantics (DUNNO/REJECT lines are exceptions), configured action and reload.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { KnownNetworksCheck, isPermitAction } from '../../../src/policy/checks/known-networks-check.js';
import { CidrTable } from '../../../src/policy/tables/cidr-table.js';
import { contextFor } from '../fixtures.js';

const s = suite('policy/checks/known-networks-check');

const table = CidrTable.parse(
  ['192.0.2.99 DUNNO', '192.0.2.0/24 OK', '198.51.100.7 REJECT', '2001:db8:25::/48 RELAY', '203.0.113.5 1700000000'].join('\n'),
  'known.cidr',
);

s('table-driven: permit-like first matches are known networks, v4 and v6', () => {
  const check = new KnownNetworksCheck(table);
  const cases: Array<[string, string | null]> = [
    ['192.0.2.10', 'known network 192.0.2.0/24 (known.cidr:2)'],
    ['::ffff:192.0.2.10', 'known network 192.0.2.0/24 (known.cidr:2)'],
    ['2001:db8:25::1', 'known network 2001:db8:25::/48 (known.cidr:4)'],
    ['203.0.113.5', 'known network 203.0.113.5/32 (known.cidr:5)'], // all-numeric result = OK in Postfix
    ['192.0.2.99', null], // DUNNO exception line before the /24
    ['198.51.100.7', null], // REJECT line: not trusted, no verdict here
    ['203.0.113.6', null],
    ['2001:db8:26::1', null],
    ['', null],
  ];
  for (const [client, reason] of cases) {
    const r = check.run(contextFor({ client_address: client }));
    if (reason === null) assert.is(r, null, client);
    else assert.equal(r, { action: 'DUNNO', reason }, client);
  }
});

s('configured action OK; no table or empty table skips the step; setTable reloads', () => {
  const ok = new KnownNetworksCheck(table, { action: 'OK' });
  assert.is(ok.run(contextFor({ client_address: '192.0.2.1' }))?.action, 'OK');
  const none = new KnownNetworksCheck();
  assert.is(none.run(contextFor({ client_address: '192.0.2.1' })), null);
  none.setTable(CidrTable.parse('192.0.2.0/24\n'));
  assert.is(none.run(contextFor({ client_address: '192.0.2.1' }))?.action, 'DUNNO');
  none.setTable(new CidrTable());
  assert.is(none.run(contextFor({ client_address: '192.0.2.1' })), null);
  assert.equal([none.step, none.name], [5, 'known-networks']);
});

s('isPermitAction', () => {
  for (const a of ['OK', 'ok', 'RELAY', 'PERMIT', '12345', 'OK trusted']) assert.ok(isPermitAction(a), a);
  for (const a of ['DUNNO', 'REJECT', '550 no', 'DEFER_IF_PERMIT x', '']) assert.not.ok(isPermitAction(a), a);
});

s.run();
