// Builds and starts a whole fake DNS tree (root -> TLDs -> leaf zones) on 127.53.0.0/16 from one
// data description, plus the ready-made standardTree() that resolver, policy, e2e and bench tests
// share. Gives root hints text and a portFor() mapping for NetTransport. Loopback only: portFor
// refuses any non-loopback address so a buggy resolver under test can never reach the Internet.
import net from 'node:net';
import type { Clock } from '../../src/util/clock.js';
import { FakeAuthority, type Behaviour, type FakeQuery } from './fake-authority.js';
import { canonical, parseFakeZone, type FakeZone } from './fake-zone.js';

/** A server of the tree: its address and the origins (keys of HierarchySpec.zones) it serves. */
export interface HierarchyServerSpec {
  address: string;
  zones: string[];
  behaviour?: Behaviour | Behaviour[];
}

export interface HierarchySpec {
  /** Zone data keyed by origin ('.', 'com.', 'example.com.'). The root zone is required. */
  zones: Record<string, { records: string[] }>;
  servers: HierarchyServerSpec[];
}

export interface FakeHierarchy {
  /** named.root-style text: the root zone's apex NS records and the addresses of those names. */
  readonly rootHints: string;
  /** (address, port) -> the fake server's real port; other loopback addresses keep their port; others throw. */
  readonly portFor: (address: string, port: number) => number;
  /** The server bound to an address; throws if there is none. */
  server(address: string): FakeAuthority;
  readonly servers: readonly FakeAuthority[];
  /** All queries of all servers, with the server address, in arrival order. */
  allQueries(): Array<FakeQuery & { server: string }>;
  clearQueries(): void;
  stop(): Promise<void>;
}

/** Starts every server of the spec; on failure stops those already started. */
export async function startHierarchy(spec: HierarchySpec, opts: { clock?: Clock } = {}): Promise<FakeHierarchy> {
  const zones = new Map<string, FakeZone>();
  for (const [origin, z] of Object.entries(spec.zones)) zones.set(canonical(origin), { origin: canonical(origin), records: z.records });
  const root = zones.get('.');
  if (!root) throw new Error('fake hierarchy: the root zone "." is required');
  const rootNs = parseFakeZone(root).filter((r) => r.key === '.' && r.type === 'NS').map((r) => r.data as string);

  const servers: FakeAuthority[] = [];
  const byAddress = new Map<string, FakeAuthority>();
  for (const s of spec.servers) {
    if (byAddress.has(s.address)) throw new Error(`fake hierarchy: address ${s.address} used twice`);
    const served = s.zones.map((origin) => {
      const z = zones.get(canonical(origin));
      if (!z) throw new Error(`fake hierarchy: server ${s.address} serves unknown zone ${origin}`);
      return z;
    });
    const server = new FakeAuthority({ address: s.address, zones: served, behaviour: s.behaviour, rootNs }, opts);
    servers.push(server);
    byAddress.set(s.address, server);
  }
  try {
    await Promise.all(servers.map((s) => s.start()));
  } catch (err) {
    await Promise.all(servers.map((s) => s.stop()));
    throw err;
  }

  const rootHints = buildRootHints([...zones.values()], rootNs);
  const portFor = (address: string, port: number): number => {
    const server = byAddress.get(address);
    if (server) return server.port;
    const loopback = net.isIPv4(address) ? address.startsWith('127.') : address === '::1';
    if (!loopback) throw new Error(`fake hierarchy: refusing to send to non-loopback address ${address}`);
    return port;
  };
  return {
    rootHints,
    portFor,
    servers,
    server(address: string): FakeAuthority {
      const s = byAddress.get(address);
      if (!s) throw new Error(`fake hierarchy: no server at ${address}`);
      return s;
    },
    allQueries() {
      const all = servers.flatMap((s) => s.queries.map((q) => ({ ...q, server: s.address })));
      return all.sort((a, b) => a.at - b.at);
    },
    clearQueries() {
      for (const s of servers) s.clearQueries();
    },
    async stop() {
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
}

/** named.root-style hints: '.' NS lines, then the A/AAAA of each root server name from any zone. */
function buildRootHints(zones: FakeZone[], rootNs: string[]): string {
  const records = zones.flatMap((z) => parseFakeZone(z));
  const lines = ['; root hints of a fake hierarchy (test/helpers/fake-hierarchy.ts)'];
  const seen = new Set<string>();
  for (const ns of rootNs) {
    lines.push(`.                        3600000      NS    ${ns}`);
    for (const r of records) {
      if (r.key !== canonical(ns) || (r.type !== 'A' && r.type !== 'AAAA')) continue;
      const line = `${ns.padEnd(24)} 3600000      ${r.type.padEnd(5)} ${r.data as string}`;
      if (seen.has(line)) continue;
      seen.add(line);
      lines.push(line);
    }
  }
  return `${lines.join('\n')}\n`;
}

const SOA = (mname: string, rname: string, ttlSec = 3600): string => `@ ${ttlSec} IN SOA ${mname} ${rname} 2024010101 7200 3600 1209600 300`;

/**
 * The standard tree for everyone's tests. Addresses (all 127.53.0.0/16) and notable data:
 * - root '.': a.root-servers.net 127.53.0.1, b.root-servers.net 127.53.0.2 (glue in the root zone,
 *   the names themselves under net.); delegates com. and net. to a/b.gtld-servers.net.
 * - com. and net.: a.gtld-servers.net 127.53.1.1, b.gtld-servers.net 127.53.1.2 (both zones).
 * - example.com.: ns1.example.com 127.53.2.1 (in bailiwick, glue in com.) and ns2.example.net
 *   127.53.2.2 (out of bailiwick: no glue in com., its address only in example.net.).
 *   www A 192.0.2.1 + AAAA 2001:db8::1; mail A 192.0.2.25; @ MX 10 mail; @ TXT "v=spf1 mx -all";
 *   CNAME chain alias -> alias2 -> www; ext CNAME www.example.net. (crosses zones);
 *   legacy DNAME example.net. (www.legacy.example.com -> www.example.net); empty non-terminal
 *   ent.example.com (host.ent.example.com A 192.0.2.30); NXDOMAIN/NODATA negative TTL 300.
 * - example.net.: ns1.example.net 127.53.3.1; www A 192.0.2.20; ns2 A 127.53.2.2; delegates
 *   dnsbl.example.net. to ns.dnsbl.example.net 127.53.4.1 (glue).
 * - dnsbl.example.net.: DNSBL-like, served with 'nxdomain-ent' as rbldnsd does: 2.0.0.127 A
 *   127.0.0.2 + TXT "Listed: test entry, see https://dnsbl.example.net/q?127.0.0.2"; 4.0.0.127 A
 *   127.0.0.4 + TXT; 1.0.0.127 not listed (NXDOMAIN); negative TTL 60.
 */
export function standardTree(): HierarchySpec {
  return {
    zones: {
      '.': {
        records: [
          SOA('a.root-servers.net.', 'nstld.verisign-grs.com.', 86400),
          '@ 518400 IN NS a.root-servers.net.',
          '@ 518400 IN NS b.root-servers.net.',
          'a.root-servers.net. 518400 IN A 127.53.0.1',
          'b.root-servers.net. 518400 IN A 127.53.0.2',
          'com. 172800 IN NS a.gtld-servers.net.',
          'com. 172800 IN NS b.gtld-servers.net.',
          'net. 172800 IN NS a.gtld-servers.net.',
          'net. 172800 IN NS b.gtld-servers.net.',
          'a.gtld-servers.net. 172800 IN A 127.53.1.1',
          'b.gtld-servers.net. 172800 IN A 127.53.1.2',
        ],
      },
      'com.': {
        records: [
          SOA('a.gtld-servers.net.', 'nstld.verisign-grs.com.'),
          '@ 172800 IN NS a.gtld-servers.net.',
          '@ 172800 IN NS b.gtld-servers.net.',
          'example 172800 IN NS ns1.example.com.',
          'example 172800 IN NS ns2.example.net.',
          'ns1.example 172800 IN A 127.53.2.1',
        ],
      },
      'net.': {
        records: [
          SOA('a.gtld-servers.net.', 'nstld.verisign-grs.com.'),
          '@ 172800 IN NS a.gtld-servers.net.',
          '@ 172800 IN NS b.gtld-servers.net.',
          'a.gtld-servers 172800 IN A 127.53.1.1',
          'b.gtld-servers 172800 IN A 127.53.1.2',
          'a.root-servers 3600000 IN A 127.53.0.1',
          'b.root-servers 3600000 IN A 127.53.0.2',
          'example 172800 IN NS ns1.example.net.',
          'ns1.example 172800 IN A 127.53.3.1',
        ],
      },
      'example.com.': {
        records: [
          SOA('ns1.example.com.', 'hostmaster.example.com.'),
          '@ 3600 IN NS ns1.example.com.',
          '@ 3600 IN NS ns2.example.net.',
          '@ 3600 IN MX 10 mail.example.com.',
          '@ 3600 IN TXT "v=spf1 mx -all"',
          'ns1 3600 IN A 127.53.2.1',
          'www 300 IN A 192.0.2.1',
          'www 300 IN AAAA 2001:db8::1',
          'mail 300 IN A 192.0.2.25',
          'alias 300 IN CNAME alias2',
          'alias2 300 IN CNAME www',
          'ext 300 IN CNAME www.example.net.',
          'legacy 300 IN DNAME example.net.',
          'host.ent 300 IN A 192.0.2.30',
        ],
      },
      'example.net.': {
        records: [
          SOA('ns1.example.net.', 'hostmaster.example.net.'),
          '@ 3600 IN NS ns1.example.net.',
          'ns1 3600 IN A 127.53.3.1',
          'ns2 3600 IN A 127.53.2.2',
          'www 300 IN A 192.0.2.20',
          'dnsbl 3600 IN NS ns.dnsbl.example.net.',
          'ns.dnsbl 3600 IN A 127.53.4.1',
        ],
      },
      'dnsbl.example.net.': {
        records: [
          '@ 3600 IN SOA ns.dnsbl.example.net. hostmaster.example.net. 2024010101 600 300 86400 60',
          '@ 3600 IN NS ns.dnsbl.example.net.',
          'ns 3600 IN A 127.53.4.1',
          '2.0.0.127 300 IN A 127.0.0.2',
          '2.0.0.127 300 IN TXT "Listed: test entry, see https://dnsbl.example.net/q?127.0.0.2"',
          '4.0.0.127 300 IN A 127.0.0.4',
          '4.0.0.127 300 IN TXT "Listed: second test entry"',
        ],
      },
    },
    servers: [
      { address: '127.53.0.1', zones: ['.'] },
      { address: '127.53.0.2', zones: ['.'] },
      { address: '127.53.1.1', zones: ['com.', 'net.'] },
      { address: '127.53.1.2', zones: ['com.', 'net.'] },
      { address: '127.53.2.1', zones: ['example.com.'] },
      { address: '127.53.2.2', zones: ['example.com.'] },
      { address: '127.53.3.1', zones: ['example.net.'] },
      { address: '127.53.4.1', zones: ['dnsbl.example.net.'], behaviour: 'nxdomain-ent' },
    ],
  };
}
