// End-to-end: the built daemon and a real Unbound resolve the same names through the same fake
// tree, in which each of eleven zones has two misbehaving name servers (REFUSED, SERVFAIL, TC over
// UDP, EDNS-intolerant, no AA, recursive resolvers, upward referrals, 0x20-breaking, poisoning, ...),
// and must give the same answers (rcode and records, TTLs aside). Unbound only asks port 53, so the
// tree listens on port 53 of 127.53.x.y: needs root and the `unbound` peer (a skip is printed
// without them, except under CI=true). Behaviours that only time out are left out: Unbound keeps
// retrying for longer than a client waits, mxsentry answers SERVFAIL at its deadline (README).
// PARITY_DEBUG=1 prints every comparison.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Behaviour } from '../helpers/fake-authority.js';
import { standardTree, type HierarchySpec } from '../helpers/fake-hierarchy.js';
import { loggedHook } from '../helpers/hook-errors.js';
import { sideBySideReady, startSideBySide, stopSideBySide, type SideBySide } from '../helpers/unbound-side-by-side.js';

const run = promisify(execFile);
const s = suite('e2e/dns-unbound-recursion-parity');

/** Each behaviour gets a zone <label>.com. whose two servers (127.53.20.<2k>, .<2k+1>) both show it. */
const CASES: readonly { label: string; behaviour: Behaviour | Behaviour[] }[] = [
  { label: 'refused', behaviour: 'refused' },
  { label: 'servfail', behaviour: 'servfail' },
  { label: 'truncate-udp', behaviour: 'truncate-udp' },
  { label: 'formerr-edns', behaviour: 'formerr-edns' },
  { label: 'notimp-edns', behaviour: 'notimp-edns' },
  { label: 'no-aa', behaviour: 'no-aa' },
  { label: 'recursive', behaviour: 'recursive' },
  { label: 'upward-referral', behaviour: 'upward-referral' },
  { label: 'case-mismatch', behaviour: 'case-mismatch' },
  { label: 'out-of-bailiwick', behaviour: 'out-of-bailiwick' },
  // Negative answers with neither AA nor an SOA: Unbound takes them as answers (RFC 2308 type 3).
  { label: 'bare-negative', behaviour: ['no-aa', 'no-soa'] },
];

/** What each zone is asked: an answer, NXDOMAIN, an apex answer, a CNAME, NODATA. */
const QUESTIONS = (label: string): ReadonlyArray<readonly [string, string]> => [
  [`www.${label}.com`, 'A'],
  [`nothing.${label}.com`, 'A'],
  [`${label}.com`, 'MX'],
  [`alias.${label}.com`, 'A'],
  [`mail.${label}.com`, 'TXT'],
];

/** The standard tree plus one delegated zone per case, each with its misbehaving pair of servers. */
function parityTree(): HierarchySpec {
  const tree = standardTree();
  const com = tree.zones['com.'];
  if (!com) throw new Error('standard tree without com.');
  CASES.forEach(({ label, behaviour }, k) => {
    const a1 = `127.53.20.${2 * k + 2}`;
    const a2 = `127.53.20.${2 * k + 3}`;
    com.records.push(`${label} 172800 IN NS ns1.${label}.com.`, `${label} 172800 IN NS ns2.${label}.com.`, `ns1.${label} 172800 IN A ${a1}`, `ns2.${label} 172800 IN A ${a2}`);
    tree.zones[`${label}.com.`] = {
      records: [
        `@ 3600 IN SOA ns1.${label}.com. hostmaster.${label}.com. 2024010101 7200 3600 1209600 300`,
        `@ 3600 IN NS ns1.${label}.com.`,
        `@ 3600 IN NS ns2.${label}.com.`,
        `@ 3600 IN MX 10 mail.${label}.com.`,
        `ns1 3600 IN A ${a1}`,
        `ns2 3600 IN A ${a2}`,
        `www 300 IN A 192.0.2.${100 + k}`,
        'mail 300 IN A 192.0.2.25',
        'alias 300 IN CNAME www',
      ],
    };
    tree.servers.push({ address: a1, zones: [`${label}.com.`], behaviour }, { address: a2, zones: [`${label}.com.`], behaviour });
  });
  return tree;
}

/** dig's rcode and answer records (type and data, sorted; TTLs differ between the two caches). */
async function ask(port: number, name: string, type: string): Promise<string> {
  const { stdout } = await run('dig', ['+tries=1', '+time=15', '-p', String(port), '@127.0.0.1', name, type], { encoding: 'utf8' });
  const rcode = /status: (\w+)/.exec(stdout)?.[1] ?? '?';
  const section = stdout.split(';; ANSWER SECTION:')[1]?.split('\n\n')[0] ?? '';
  const records = section.split('\n').filter((l) => l.trim() !== '').map((l) => { const f = l.split(/\s+/); return `${f[0]?.toLowerCase()} ${f.slice(3).join(' ')}`; });
  return [rcode, ...records.sort()].join(' | ');
}

let sbs: SideBySide | null = null;

s.before(loggedHook(async () => {
  sbs = await startSideBySide(parityTree(), 'mxsentry-unbound-rec-');
}));

s.after(async () => {
  if (sbs) await stopSideBySide(sbs);
});

s('zones whose servers misbehave resolve to the same answers in mxsentry as in Unbound', async () => {
  const name = 'misbehaving servers: mxsentry vs Unbound';
  if (!sideBySideReady(sbs, name)) return;
  const { daemon, unbound } = sbs;
  const differences: string[] = [];
  let compared = 0;
  for (const { label } of CASES) {
    for (const [qname, qtype] of QUESTIONS(label)) {
      const [u, m] = await Promise.all([ask(unbound.port, qname, qtype), ask(daemon.port, qname, qtype)]);
      compared++;
      if (process.env.PARITY_DEBUG) console.log(`${qname} ${qtype}: ${u} // ${m}`);
      if (u !== m) differences.push(`${qname} ${qtype}: Unbound ${u} / mxsentry ${m}`);
    }
  }
  assert.is(compared, CASES.length * QUESTIONS('x').length);
  assert.equal(differences, [], differences.join('\n'));
  // The cases are not all alike: some zones answer, some cannot (both servers REFUSED, SERVFAIL).
  assert.match(await ask(daemon.port, 'www.recursive.com', 'A'), /^NOERROR \| www\.recursive\.com\. A 192\.0\.2\.106$/);
  assert.match(await ask(daemon.port, 'www.refused.com', 'A'), /^SERVFAIL/);
});

s.run();
